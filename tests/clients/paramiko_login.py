#!/usr/bin/env python3
"""Logs in over SSH with paramiko, a third-party client: public key, then keyboard-interactive.

usage: paramiko_login.py HOST PORT USER KEYFILE CODE

Answers every keyboard-interactive prompt with CODE and prints one JSON object: what the
client concluded ("outcome": "authenticated", "failed" for an AuthenticationException,
"bad_auth_type" for a BadAuthenticationType, with "allowed" the methods the server still
offered), and every keyboard-interactive round the server sent ("rounds": its
instruction text and its prompts). Used by tests/real_logins.rs.
"""

import json
import sys

import paramiko


def main():
    host, port, user, keyfile, code = sys.argv[1:6]
    key = paramiko.Ed25519Key.from_private_key_file(keyfile)
    rounds = []

    def handler(title, instructions, prompts):
        rounds.append(
            {"title": title, "instructions": instructions, "prompts": [p for p, _ in prompts]}
        )
        return [code for _ in prompts]

    transport = paramiko.Transport((host, int(port)))
    result = {"rounds": rounds}
    try:
        transport.start_client(timeout=30)
        result["after_key"] = transport.auth_publickey(user, key)
        try:
            transport.auth_interactive(user, handler)
            result["outcome"] = "authenticated"
        except paramiko.BadAuthenticationType as e:
            result["outcome"] = "bad_auth_type"
            result["allowed"] = list(e.allowed_types)
        except paramiko.AuthenticationException as e:
            result["outcome"] = "failed"
            result["error"] = str(e)
    finally:
        transport.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
