"""`fed-dns kubeconfig [--config FILE]`: print a kubeconfig for the federation API
(context `federation`), generating the API's certificate and token if still missing."""

from __future__ import annotations

import json
import sys


def main(args) -> int:
    from fed_dns import config as config_mod
    from fed_dns.app import apicreds
    from fed_dns.app.run import config_path

    try:
        config = config_mod.load(config_path(args.config))
    except config_mod.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        creds = apicreds.ensure(config.api)
    except (OSError, ValueError) as exc:
        print(f"fed-dns kubeconfig: {exc}", file=sys.stderr)
        return 2
    doc = apicreds.kubeconfig(server=apicreds.server_url(config.api), creds=creds)
    json.dump(doc, sys.stdout, indent=2)  # JSON is YAML: kubectl reads it as is
    print()
    return 0
