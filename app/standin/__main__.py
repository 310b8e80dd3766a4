"""Run the Twilio stand-in by hand: `python -m app.standin --port 8099`.

Point the application at it with BATCHCALLS_TWILIO_API_BASE and the printed credentials.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from app.standin.twilio_server import TwilioStandin

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.standin",
        description="A local server that answers like Twilio's 2010-04-01 REST API.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--account-sid", help="Account SID to accept (default: generated)")
    parser.add_argument("--auth-token", help="Auth Token to accept (default: generated)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="how much faster than real time calls progress"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the call outcome mix")
    parser.add_argument(
        "--cps", type=float, default=None, help="the account's calls per second (default: no limit)"
    )
    parser.add_argument(
        "--rate-limit",
        choices=("queue", "reject"),
        default="queue",
        help="beyond --cps, queue the calls (as Twilio does) or answer 429 with Retry-After",
    )
    parser.add_argument(
        "--create-delay",
        type=float,
        default=0.0,
        help="seconds before a call create is answered (real Twilio: about 0.1-0.3)",
    )
    parser.add_argument(
        "--create-delay-max",
        type=float,
        default=None,
        help="draw each create's delay between --create-delay and this many seconds",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="answer 429 beyond this many requests being served at once",
    )
    parser.add_argument(
        "--request-log", metavar="FILE", help="append every request to FILE as JSON lines"
    )
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not keep every request in memory (long benchmarks)",
    )
    return parser


def main(argv: list[str] | None = None, *, stop: threading.Event | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.account_sid and not (len(args.account_sid) == 34 and args.account_sid.startswith("AC")):
        print("--account-sid must be 'AC' followed by 32 hexadecimal characters.", file=sys.stderr)
        return 2
    if args.speed <= 0 or (args.cps is not None and args.cps <= 0):
        print("--speed and --cps must be positive numbers.", file=sys.stderr)
        return 2
    if not 0 <= args.create_delay <= 60:
        print("--create-delay must be 0 to 60 seconds.", file=sys.stderr)
        return 2
    if args.create_delay_max is not None and not args.create_delay <= args.create_delay_max <= 60:
        print("--create-delay-max must be from --create-delay to 60 seconds.", file=sys.stderr)
        return 2
    if args.max_in_flight is not None and args.max_in_flight < 1:
        print("--max-in-flight must be at least 1.", file=sys.stderr)
        return 2
    try:
        standin = TwilioStandin(
            account_sid=args.account_sid,
            auth_token=args.auth_token,
            host=args.host,
            port=args.port,
            speed=args.speed,
            seed=args.seed,
            cps=args.cps,
            rate_limit_mode=args.rate_limit,
            create_delay=args.create_delay,
            create_delay_max=args.create_delay_max,
            max_in_flight=args.max_in_flight,
            record_requests=not args.no_record,
            request_log=args.request_log,
        ).start()
    except OSError as exc:
        print(f"Cannot listen on {args.host}:{args.port}: {exc.strerror}.", file=sys.stderr)
        return 1
    token = "(the one you gave)" if args.auth_token else standin.auth_token
    print(f"Twilio stand-in listening on {standin.base_url}", flush=True)
    print(f"  BATCHCALLS_TWILIO_API_BASE={standin.base_url}")
    print(f"  Account SID: {standin.account_sid}")
    print(f"  Auth Token:  {token}")
    print(f"  From numbers: +14155550100, +14155550199; app {standin.default_application_sid}")
    print("Press Ctrl+C to stop.", flush=True)
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
