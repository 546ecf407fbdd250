"""Verifier worker process: reads JSON requests on stdin, answers one JSON line per request on stdout.

Runs as `python -m r1kit.rewards._verify_worker`. The parent (`r1kit.rewards.verifier.VerifierPool`) enforces the
time limit by killing this process, so math-verify's own `signal.alarm` timeouts are switched off here.
"""

from __future__ import annotations

import json
import logging
import sys


def main() -> None:
    # With its timeouts disabled, math-verify warns on every call; the parent's hard limit replaces them.
    logging.disable(logging.WARNING)
    from math_verify import parse, verify

    gold_cache: dict[str, list] = {}

    def judge(answer: str, gold: str) -> tuple[float | None, str]:
        if gold not in gold_cache:
            gold_cache[gold] = parse(gold, parsing_timeout=None)
        gold_parsed = gold_cache[gold]
        if not gold_parsed:
            return None, "unparseable_gold"
        answer_parsed = parse(answer, parsing_timeout=None)
        if not answer_parsed:
            return 0.0, "wrong"
        correct = verify(gold_parsed, answer_parsed, timeout_seconds=None, raise_on_error=True)
        return (1.0, "correct") if correct else (0.0, "wrong")

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            score, status = judge(request["answer"], request["gold"])
        except Exception as error:  # a verifier bug must cost one item, not the worker
            score, status = None, f"error: {type(error).__name__}: {error}"[:300]
        out.write(json.dumps({"score": score, "status": status}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
