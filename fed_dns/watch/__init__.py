"""fed_dns.watch"""
