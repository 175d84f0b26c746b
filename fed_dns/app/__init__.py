"""The composition root: one module per command, each with `main(args) -> int`.

Only here do watch, server, etcd, federation and sim meet (ARCHITECTURE.md).
"""
