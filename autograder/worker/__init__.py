"""The untrusted side of the trust boundary: everything that starts or talks to student code.

`autograder.worker.sandbox` is the single primitive that runs a command under resource limits (`limits`),
in a scrubbed environment and a private directory (`spawn`), as an unprivileged user when the grader is root
(`users`).
"""
