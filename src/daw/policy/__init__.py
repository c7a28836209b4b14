"""Policy as code: the model, the built-in default, loading and evaluation.

Nothing in this package does I/O except ``loading``; ``evaluation`` is pure.
"""
