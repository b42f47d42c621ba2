# shellcheck shell=bash
# What the demos' namespace scripts share (scripts/demo-namespace.sh, demo-certs-namespace.sh,
# demo-reach-namespace.sh, run by tests/e2e/ns): scripts/lib.sh for kw_quote, tests/e2e/lib.sh
# for its helpers (iam, step, note, fail, ...; sourced second, so that they win), and how a demo
# shows a command and what it said.
# shellcheck source=scripts/lib.sh
. "$E2E_REPO/scripts/lib.sh"
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

# show CMD ARGS...: echo the command, quoted so that it can be pasted, then run it; its output
# indented. Returns the command's exit code.
show() {
    printf '   $ %s\n' "$(kw_quote "$@")" >&2
    "$@" 2>&1 | sed 's/^/   | /' >&2
    return "${PIPESTATUS[0]}"
}

# show_sh 'PIPELINE': echo a shell pipeline as written, then run it with bash.
show_sh() {
    printf '   $ %s\n' "$1" >&2
    bash -c "$1" 2>&1 | sed 's/^/   | /' >&2
}

# indent: stdin shown as show shows a command's output.
indent() { sed 's/^/   | /' >&2; }

# aws_py CODE [ARGS...]: Python with boto3 clients (iam, sts, ec2) for this namespace's moto
# itself, also once fault_proxy_start put a proxy in front of it for keyward; ARGS in `args`.
aws_py() {
    AWS_ENDPOINT_URL=${E2E_MOTO_URL:-$AWS_ENDPOINT_URL} "$E2E_PY" -c "
import sys, json, boto3
iam, sts, ec2 = boto3.client('iam'), boto3.client('sts'), boto3.client('ec2')
args = sys.argv[1:]
$1" "${@:2}"
}

# access_key USER: a new access key of IAM user USER: its id and secret, on one line.
access_key() {
    aws_py '
k = iam.create_access_key(UserName=args[0])["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])' "$1"
}
