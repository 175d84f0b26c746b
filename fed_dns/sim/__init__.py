"""fed_dns.sim"""
