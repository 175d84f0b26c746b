"""fed-dns: cross-cluster DNS service discovery for Kubernetes federations."""

__version__ = "0.1.0"
