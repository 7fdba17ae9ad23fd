"""The soak's durability checks: every reader's follows and the events stream, read back."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.soak.client import Client
from bench.soak.common import CHECK_BUDGET_S, CHECK_THREADS, CLIENT_TIMEOUT_S, log
from bench.soak.load import Load
from bench.soak.users import User
from feed.readers.events import STREAM_MAX_LEN


def follows_after_outage(
    port: int, users: Sequence[User], *, ready: bool, after: str
) -> dict[str, Any]:
    """Every user's follows right after an outage (``after``: which), each with that user's
    writes held off; CHECK_THREADS users at a time, so that a loaded server does not stretch
    the check over the next phase."""
    t0 = time.monotonic()
    deadline = t0 + CHECK_BUDGET_S
    verdicts: list[tuple[str, User]] = []
    if ready:
        chunks = [users[n::CHECK_THREADS] for n in range(CHECK_THREADS)]
        threads = [
            threading.Thread(target=_check_chunk, args=(port, chunk, deadline, verdicts))
            for chunk in chunks
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    counts = Counter(verdict for verdict, _ in verdicts)
    lost = [lost_detail(user) for verdict, user in verdicts if verdict == "lost"]
    checked = len(verdicts)
    skipped = len(users) - checked
    follows = {
        "checked": checked,
        # Not ready again, too slow to answer, or the user's write still in flight: no verdict.
        "skipped": skipped,
        "lost": len(lost),
        "unacknowledged_applied": counts["unacked"],
        "lost_detail": lost[:20],
        "seconds": time.monotonic() - t0,
    }
    log(f"follows after {after}: {checked} checked, {len(lost)} lost, {skipped} skipped")
    return follows


def _check_chunk(
    port: int, users: Sequence[User], deadline: float, verdicts: list[tuple[str, User]]
) -> None:
    client = Client(port)
    try:
        for user in users:
            if time.monotonic() > deadline:
                return
            if not user.write_lock.acquire(timeout=CLIENT_TIMEOUT_S + 5):
                continue
            try:
                if user.quarantine_until > time.monotonic():
                    continue
                verdict = verify(client, user)
            finally:
                user.write_lock.release()
            if verdict != "unreadable":
                verdicts.append((verdict, user))  # list.append: safe across threads
    finally:
        client.close()


def verify(client: Client, user: User) -> str:
    """'ok', 'unacked' (an unacknowledged write took effect), 'lost' or 'unreadable'."""
    got: frozenset[str] | None = None
    for _ in range(20):
        try:
            reply = client.request("GET", f"/v1/users/{user.name}/categories", user.auth)
        except (OSError, http.client.HTTPException):
            time.sleep(0.25)
            continue
        if reply.status == 200:
            got = frozenset(json.loads(reply.body)["categories"])
            break
        time.sleep(0.25)
    if got is None:
        return "unreadable"
    user.found = got
    if got == user.acked:
        return "ok"
    return "unacked" if got in user.candidates() else "lost"


def lost_detail(user: User) -> dict[str, Any]:
    got = user.found
    return {
        "user": user.name,
        "acknowledged": sorted(user.acked or ()),
        "acknowledged_at": round(user.acked_at, 3),
        "acknowledged_op": list(user.acked_op) if user.acked_op else None,
        "ambiguous_ops": [list(op) for op in user.ambiguous],
        "found": sorted(got) if got is not None else None,
    }


def follows_at_end(port: int, users: Sequence[User]) -> dict[str, Any]:
    """Every user's follows once the load is over, against their last acknowledged write."""
    client = Client(port)
    verdicts: Counter[str] = Counter()
    lost: list[dict[str, Any]] = []
    deadline = time.monotonic() + CHECK_BUDGET_S
    try:
        for user in users:
            late = time.monotonic() > deadline
            verdict = "unchecked" if late else verify(client, user)
            verdicts[verdict] += 1
            if verdict == "lost":
                lost.append(lost_detail(user))
    finally:
        client.close()
    return {
        "users": len(users),
        "acknowledged_writes": sum(u.acks for u in users),
        "verdicts": dict(verdicts),
        "lost": len(lost),
        "lost_detail": lost[:20],
    }


def events_at_end(load: Load, stream: int) -> dict[str, Any]:
    """Events acknowledged over the run against the stream's length (``stream``) at the end."""
    accepted = load.accepted_events()
    return {
        "accepted": accepted,
        "batches_acknowledged": sum(len(c) for c in load.event_acks),
        "rejected_in_acknowledged_batches": sum(load.events_rejected),
        "in_unacknowledged_batches": sum(load.events_ambiguous),
        "stream_length": stream,
        "capped": stream >= STREAM_MAX_LEN * 0.9,
        "lost": max(0, accepted - stream),
        "unacknowledged_stored": max(0, stream - accepted),
    }
