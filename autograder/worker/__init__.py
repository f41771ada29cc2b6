"""The untrusted side of the trust boundary: everything that starts or talks to student code.

`autograder.worker.sandbox` is the single primitive that runs a command under resource limits,
in a scrubbed environment and a private directory, as an unprivileged user when the grader is root.
"""
