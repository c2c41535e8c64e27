"""`lienthong codec new-key|operator-token`: the keys that encrypt applicants' data in
Temporal and the operators' tokens for the gateway's /codec endpoint (services/codec.py).
Both print to stdout once and store nothing: the operator puts them in the environment."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from config.settings import Settings
from services import codec


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("codec", help="encryption keys of applicants' data in Temporal; codec operators")
    action = parser.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    key = action.add_parser("new-key", help="a new AES-256 key as ID:BASE64, for LIENTHONG_CODEC_KEYS")
    key.add_argument("--id", metavar="ID", help="the key's id (default: k + today's date)")
    key.set_defaults(run=new_key)
    operator = action.add_parser("operator-token",
                                 help="a token for an operator of the gateway's /codec endpoint (printed once)")
    operator.add_argument("name", metavar="NAME")
    operator.set_defaults(run=operator_token)


def new_key(args: argparse.Namespace, settings: Settings) -> int:
    line = codec.new_key_line(args.id)
    print("rotation: 1. list it in LIENTHONG_CODEC_KEYS everywhere (decrypting only: keep "
          "LIENTHONG_CODEC_KEY_ID on the current key); 2. once every process has it, make it "
          "LIENTHONG_CODEC_KEY_ID; 3. drop the old key only once every dossier started before step 2 has "
          "closed and passed the namespace retention (README, \"Applicants' data\"):", file=sys.stderr, flush=True)
    print(line, flush=True)
    return 0


def operator_token(args: argparse.Namespace, settings: Settings) -> int:
    token, entry = codec.new_operator_token(args.name)
    print(f"token for {args.name}, shown once: give it to them. Add to LIENTHONG_CODEC_OPERATORS "
          f"(comma-separated) on the gateway: {entry}", file=sys.stderr, flush=True)
    print(token, flush=True)
    return 0
