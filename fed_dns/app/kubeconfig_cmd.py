"""`fed-dns kubeconfig [--config FILE] [--output FILE]`: a kubeconfig for the federation API
(context `federation`), generating the API's certificate and token if still missing; printed,
or written to `--output` with mode 0600 from its creation (it holds the token)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


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
    text = json.dumps(doc, indent=2) + "\n"  # JSON is YAML: kubectl reads it as is
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        apicreds.write_private(Path(args.output).expanduser(), text.encode())
    except OSError as exc:
        print(f"fed-dns kubeconfig: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    return 0
