"""fed_dns.federation"""
