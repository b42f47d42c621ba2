#!/usr/bin/env python3
"""Seed the IAM of a local moto server for keyward's tests, demo and benchmark.

Run through `iam` from scripts/lib.sh (which uses the venv's Python and the
AWS_* variables exported by moto_start). It refuses any endpoint that is not
on the loopback interface, so it can never touch a real AWS account.

Subcommands print what a caller needs next (a key's SSHPublicKeyId) on stdout.
"""

import argparse
import os
import sys
import urllib.parse

import boto3


def loopback_endpoint():
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"seed.py: refusing AWS_ENDPOINT_URL={url!r}: only a loopback moto server may be seeded")
    return url


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
    elif a.cmd == "py":
        exec(compile(a.code, "<iam py>", "exec"), {"iam": iam, "boto3": boto3, "args": a.args, "__name__": "__iam_py__"})


if __name__ == "__main__":
    main()
