"""fed_dns.records"""
