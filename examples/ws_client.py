"""Stream an audio file to the studio's live WebSocket and print its events.

    python examples/ws_client.py AUDIO [--url ws://127.0.0.1:7860/ws/transcribe]
        [--language LANG] [--realtime] [--finals-only] [--token KEY]

The file is decoded to 16 kHz mono and sent as pcm16 frames of 100 ms, paced in real time with
--realtime, else as fast as the server reads them. Partials overwrite one status line; finals
are printed one per line with their times and latency.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRAME_SECONDS = 0.1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("audio", type=Path)
    parser.add_argument("--url", default="ws://127.0.0.1:7860/ws/transcribe")
    parser.add_argument("--language")
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--finals-only", action="store_true")
    parser.add_argument("--token", help="API key, when the server requires one")
    return parser


def _print_events(socket) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        for message in socket:
            event = json.loads(message)
            if event["type"] == "partial":
                print(f"\r… {event['text'][-100:]:<100}", end="", flush=True)
            elif event["type"] == "final":
                latency = f"  (+{event['latency']:.2f} s)" if "latency" in event else ""
                times = f"[{event['start']:7.2f} - {event['end']:7.2f}]"
                print(f"\r{times} {event['text']}{latency:<100}")
            elif event["type"] == "error":
                print(f"\nerror: {event['message']}", file=sys.stderr)
    except ConnectionClosed:
        return


def main(argv: list[str] | None = None) -> int:
    from websockets.sync.client import connect

    from utils.audio import SAMPLE_RATE, load_audio

    args = _parser().parse_args(argv)
    samples = load_audio(args.audio)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    url = f"{args.url}?token={args.token}" if args.token else args.url
    config = {"sample_rate": SAMPLE_RATE, "encoding": "pcm16", "partials": not args.finals_only}
    if args.language:
        config["language"] = args.language
    with connect(url, max_size=None) as socket:
        socket.send(json.dumps(config))
        reply = json.loads(socket.recv(timeout=120))
        if reply["type"] != "ready":
            print(f"error: {reply.get('message')}", file=sys.stderr)
            return 1
        printer = threading.Thread(target=_print_events, args=(socket,))
        printer.start()
        step, started = round(FRAME_SECONDS * SAMPLE_RATE), time.perf_counter()
        for first in range(0, pcm.size, step):
            if args.realtime:
                time.sleep(max(0.0, first / SAMPLE_RATE - (time.perf_counter() - started)))
            socket.send(pcm[first : first + step].tobytes())
        socket.send(json.dumps({"type": "end"}))
        printer.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
