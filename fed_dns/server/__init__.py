"""fed_dns.server"""
