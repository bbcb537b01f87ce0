"""``run.py parking``: what operators look at and fix from a shell."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gateway.security.clients import ClientStore
from gateway.settings import Settings


def _parking(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.amqp.broker import connect
    from gateway.amqp.names import Names
    from gateway.amqp.parking import depth, replay
    from gateway.domain.registry import partner_kinds_receiving_documents
    from gateway.partners import load_partners

    names = Names(settings.broker_namespace)

    async def run() -> int:
        connection = await connect(settings.broker_url, "gateway-operator")
        async with connection:
            if args.action == "replay":
                moved = await replay(connection, names, args.queue, args.limit)
                print(f"moved {moved} message(s) from {names.parking(args.queue)} back to {args.queue}")
                return 0
            queues = [names.deliver(c.id) for c in ClientStore(settings.clients_dir).all() if c.deliver_to]
            queues += [
                str(c.deliver_to.target)
                for c in ClientStore(settings.clients_dir).all()
                if c.deliver_to and c.deliver_to.kind == "amqp"
            ]
            partners = load_partners(settings.config_dir)
            queues += [names.partner(p.code) for p in partners]
            # Documents delivered through a partner's own API (orders to banks, the land registry).
            kinds = partner_kinds_receiving_documents()
            queues += [names.deliver(p.code) for p in partners if p.kind in kinds]
            queues += [names.replies_queue, names.callbacks_queue]
            for queue in queues:
                parked = await depth(connection, names.parking(queue))
                print(f"{names.parking(queue):<56} {'-' if parked is None else parked}")
            return 0

    return asyncio.run(run())


def register(sub: Any) -> None:
    park = sub.add_parser("parking", help="inspect parking (dead-letter) queues and move messages back")
    park_sub = park.add_subparsers(dest="action", required=True)
    park_sub.add_parser("list", help="parked messages per queue")
    rep = park_sub.add_parser("replay", help="move parked messages back to their queue")
    rep.add_argument("--queue", required=True, help="the original queue, e.g. gw.deliver.THADS-HN")
    rep.add_argument("--limit", type=int, default=1000)
    park.set_defaults(func=_parking)
