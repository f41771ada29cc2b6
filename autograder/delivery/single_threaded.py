"""Imported first by `batch`'s fork server (`warm_start.PRELOAD`), before numpy or torch: a library that starts
its threads when loaded (OpenBLAS, through numpy) must not have started them in a process that forks. Each grade
it forks sets its own share of the cores (`warm_start._grade`)."""

import os

os.environ.update({name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
