"""The OAI-PMH provider of part 3c, run by ``python -m tools.bench_servers oai``: a DSpace
7-like provider (tests/servers/oai_provider.py) over ``--records`` synthetic records made on
demand (tests/servers/oai_synthetic.py), in pages of ``--page-size``, each request answered
after ``--latency`` seconds. Kept apart from tools/bench_servers.py, which only dispatches."""

from __future__ import annotations

import argparse
from typing import Any

from tests.servers.oai_synthetic import SyntheticOaiProvider


def add_oai_parser(sub: Any) -> None:
    o = sub.add_parser("oai")
    o.add_argument("--records", type=int, default=100_000)
    o.add_argument("--page-size", type=int, default=100)
    o.add_argument("--files-per-item", type=int, default=2)
    o.add_argument("--file-size", type=int, default=2048)
    o.add_argument("--latency", type=float, default=0.0)


def start_oai(args: argparse.Namespace) -> SyntheticOaiProvider:
    return SyntheticOaiProvider(
        args.records,
        files_per_item=args.files_per_item,
        file_size=args.file_size,
        page_size=args.page_size,
        latency=args.latency,
    ).start()
