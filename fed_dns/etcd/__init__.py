"""fed_dns.etcd"""
