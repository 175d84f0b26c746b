"""`fed-dns records`: the published names and their targets, from the daemon or from etcd."""

from fed_dns.app.admin import records_main as main

__all__ = ["main"]
