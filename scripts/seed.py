#!/usr/bin/env python3
"""Seed the IAM of a local moto server for keyward's tests, demo and benchmark.

Run through `iam` from scripts/lib.sh (which uses the venv's Python and the
AWS_* variables exported by moto_start). It refuses any endpoint that is not
on the loopback interface, so it can never touch a real AWS account.

Subcommands print what a caller needs next (a key's SSHPublicKeyId) on stdout.
"""

import argparse
import json
import os
import sys
import time
import urllib.parse

import boto3


def loopback_endpoint():
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"seed.py: refusing AWS_ENDPOINT_URL={url!r}: only a loopback moto server may be seeded")
    return url


def bulk(iam, a):
    """Thousands of calls: moto spends ~6 ms of CPU per request, and one client waiting on each
    answer in turn leaves the server idle half the time; 8 threads (boto3 clients are
    thread-safe) about halve the wall time on 2 cores."""
    from concurrent.futures import ThreadPoolExecutor

    if a.users < 0 or a.groups < 1:
        sys.exit("seed.py bulk: need USERS >= 0 and GROUPS >= 1")
    width = max(4, len(str(a.users - 1)))
    gwidth = max(3, len(str(a.groups - 1)))
    groups = [f"{a.group_prefix}g{j:0{gwidth}d}" for j in range(a.groups)]
    users = [f"{a.user_prefix}{i:0{width}d}" for i in range(a.users)]
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        # Each phase finishes (and raises its first error) before the next one starts.
        list(pool.map(lambda g: iam.create_group(GroupName=g), groups))
        list(pool.map(lambda u: iam.create_user(UserName=u), users))
        list(pool.map(lambda iu: iam.add_user_to_group(GroupName=groups[iu[0] % a.groups], UserName=iu[1]),
                      enumerate(users)))
    seconds = time.perf_counter() - started
    print(json.dumps({"users": len(users), "groups": groups, "memberships": len(users),
                      "calls": len(groups) + 2 * len(users), "seconds": round(seconds, 3)}))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="iam", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("user", help="create an IAM user")
    p.add_argument("name")
    p.add_argument("--path", default="/")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser("key", help="upload an SSH public key; prints its SSHPublicKeyId")
    p.add_argument("user")
    p.add_argument("pubfile", help="public key file (- for stdin)")
    p.add_argument("--inactive", action="store_true", help="mark the key Inactive after upload")

    p = sub.add_parser("key-status", help="set a key Active or Inactive")
    p.add_argument("user")
    p.add_argument("key_id")
    p.add_argument("status", choices=["Active", "Inactive"])

    p = sub.add_parser("delete-key", help="delete an SSH public key")
    p.add_argument("user")
    p.add_argument("key_id")

    p = sub.add_parser("delete-user", help="delete a user with its keys and group memberships")
    p.add_argument("name")

    p = sub.add_parser("group", help="create an IAM group")
    p.add_argument("name")
    p.add_argument("--path", default="/")

    p = sub.add_parser("member", help="add a user to a group")
    p.add_argument("group")
    p.add_argument("user")

    p = sub.add_parser("remove-member", help="remove a user from a group")
    p.add_argument("group")
    p.add_argument("user")

    p = sub.add_parser(
        "bulk",
        help="create USERS users spread round-robin over GROUPS prefixed groups; prints a JSON summary",
        description="Creates users NAME0000.. and groups PREFIX000.., and puts user i in group "
        "i % GROUPS (one group per user, so GROUPS groups of about USERS/GROUPS members), in one "
        "process. For the sync benchmark; no SSH keys (sync does not read them).",
    )
    p.add_argument("users", type=int)
    p.add_argument("groups", type=int)
    p.add_argument("--group-prefix", default="keyward_", help="prefix of the group names (default keyward_)")
    p.add_argument("--user-prefix", default="user", help="prefix of the user names (default user)")

    p = sub.add_parser("py", help="run Python code with `iam` (a boto3 IAM client) in scope")
    p.add_argument("code")
    p.add_argument("args", nargs="*", help="available to the code as `args`")

    a = parser.parse_args(argv)
    iam = boto3.client("iam", endpoint_url=loopback_endpoint())

    if a.cmd == "user":
        tags = [dict(zip(("Key", "Value"), t.split("=", 1))) for t in a.tag]
        kwargs = {"Tags": tags} if tags else {}
        iam.create_user(UserName=a.name, Path=a.path, **kwargs)
    elif a.cmd == "key":
        body = sys.stdin.read() if a.pubfile == "-" else open(a.pubfile, encoding="utf-8").read()
        key = iam.upload_ssh_public_key(UserName=a.user, SSHPublicKeyBody=body.strip())["SSHPublicKey"]
        if a.inactive:
            iam.update_ssh_public_key(UserName=a.user, SSHPublicKeyId=key["SSHPublicKeyId"], Status="Inactive")
        print(key["SSHPublicKeyId"])
    elif a.cmd == "key-status":
        iam.update_ssh_public_key(UserName=a.user, SSHPublicKeyId=a.key_id, Status=a.status)
    elif a.cmd == "delete-key":
        iam.delete_ssh_public_key(UserName=a.user, SSHPublicKeyId=a.key_id)
    elif a.cmd == "delete-user":
        for k in iam.list_ssh_public_keys(UserName=a.name)["SSHPublicKeys"]:
            iam.delete_ssh_public_key(UserName=a.name, SSHPublicKeyId=k["SSHPublicKeyId"])
        for g in iam.list_groups_for_user(UserName=a.name)["Groups"]:
            iam.remove_user_from_group(GroupName=g["GroupName"], UserName=a.name)
        iam.delete_user(UserName=a.name)
    elif a.cmd == "group":
        iam.create_group(GroupName=a.name, Path=a.path)
    elif a.cmd == "member":
        iam.add_user_to_group(GroupName=a.group, UserName=a.user)
    elif a.cmd == "remove-member":
        iam.remove_user_from_group(GroupName=a.group, UserName=a.user)
    elif a.cmd == "bulk":
        bulk(iam, a)
    elif a.cmd == "py":
        exec(compile(a.code, "<iam py>", "exec"), {"iam": iam, "boto3": boto3, "args": a.args, "__name__": "__iam_py__"})


if __name__ == "__main__":
    main()
