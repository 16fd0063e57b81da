"""The psgen command line: thin. Parse options, call the library, print, set the exit code.

Heavy modules (pydantic, jinja2, tree-sitter, cryptography, pypsrp) are imported inside the
commands that need them so that ``psgen --version`` and ``psgen build`` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import __version__
from .errors import UserError

app = typer.Typer(
    name="psgen",
    help="Compile declarative Windows remediation plans into signed, idempotent PowerShell.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"psgen {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """psgen: plans in, PowerShell out."""


@app.command()
def validate(
    plans: List[str] = typer.Argument(..., metavar="PLAN...", help="Plan files or catalog names."),
) -> None:
    """Check plans for mistakes; print each as file:line:col with a hint."""
    from .errors import Problem
    from .load import load_plan

    problems: List[Problem] = []
    for ref in plans:
        try:
            plan = load_plan(ref)
        except UserError as exc:
            problems.extend(exc.problems)
            continue
        typer.echo(f"{plan.source}: ok ({len(plan.steps)} steps)")
    if problems:
        raise UserError(problems)


@app.command()
def build(
    plans: List[str] = typer.Argument(..., metavar="PLAN...", help="Plan files or catalog names."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Output script path (one plan only); other files of the "
        "target are written next to it."),
    out_dir: Optional[Path] = typer.Option(
        None, "--out-dir", help="Write each plan's files into this folder (default: here)."),
    target: str = typer.Option(
        "script", "--target", help="What to build: script (NAME.ps1); intune (NAME.detect.ps1, "
        "NAME.remediate.ps1 and NAME.intune.json, the Graph deviceHealthScript body); ansible "
        "(playbook NAME.yml and role roles/NAME running the script with win_powershell)."),
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 naming every output that is stale "
        "(signature blocks are ignored)."),
    sign: bool = typer.Option(False, "--sign", help="Sign every script written (Authenticode)."),
    cert: Optional[Path] = typer.Option(None, "--cert", help="With --sign: PFX/PKCS#12 file, "
                                        "or PEM/DER certificate."),
    key: Optional[Path] = typer.Option(None, "--key", help="With --sign: private key file."),
    chain: List[Path] = typer.Option([], "--chain", help="With --sign: intermediate CA "
                                     "certificates to include (repeatable)."),
    timestamp_url: Optional[str] = typer.Option(None, "--timestamp-url",
                                                help="With --sign: RFC 3161 timestamp server."),
    password_env: str = typer.Option("PSGEN_CERT_PASSWORD", "--password-env",
                                     help="With --sign: environment variable holding the "
                                     "key/PFX password (else a prompt; never argv)."),
    launcher: bool = typer.Option(
        False, "--launcher", help="With --target script: also write NAME.cmd, a double-click "
        "launcher (Windows PowerShell, elevation when the plan needs admin, pause at the end)."),
) -> None:
    """Compile plans into PowerShell scripts (ASCII, CRLF, deterministic bytes)."""
    from .build import build_plans

    options = {}
    if launcher:
        if target != "script":
            raise UserError.single("--launcher goes with --target script",
                                   hint="drop --launcher, or build the script target")
        options["launcher"] = True

    signer_fn = None
    if (cert is not None or key is not None) and not sign:
        raise UserError.single("--cert/--key are for signing", hint="add --sign")
    if sign and not check:
        if cert is None:
            raise UserError.single("--sign needs --cert", hint="psgen cert new makes a "
                                   "throwaway code-signing certificate for tests")
        from .sign import signing_function

        signer_fn = signing_function(cert, key, chain=chain, password_env=password_env,
                                     timestamp_url=timestamp_url)

    stale = build_plans(plans, output=output, out_dir=out_dir, target=target, check=check,
                        echo=typer.echo, sign=signer_fn, **options)
    if stale:
        typer.echo(f"{len(stale)} output(s) out of date: run psgen build", err=True)
        raise typer.Exit(1)


@app.command()
def explain(
    plan_ref: str = typer.Argument(..., metavar="PLAN", help="Plan file or catalog name."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file."),
) -> None:
    """Describe a plan in Markdown: what it checks, what it may change, how to undo it."""
    from .explain import explain_markdown
    from .load import load_plan
    from .util import write_atomic

    text = explain_markdown(load_plan(plan_ref))
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(output, text.encode("utf-8"))


@app.command()
def schema(
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file."),
) -> None:
    """Print the plan format's JSON Schema (for editor autocomplete)."""
    from .plan import schema_text
    from .util import write_atomic

    text = schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(output, text.encode("utf-8"))


@app.command()
def resources() -> None:
    """List the resources plans can use, with their properties."""
    from .resources import registry

    for name, cls in sorted(registry().items()):
        props = ", ".join(info.alias or f for f, info in cls.model_fields.items())
        kind = "finding, read-only" if cls.read_only else "get/test/set/restore"
        typer.echo(f"{name:22} {cls.summary} ({kind})\n{'':22} with: {props}")


@app.command("list")
def list_plans() -> None:
    """List the built-in plan catalog with titles."""
    from .load import catalog, load_plan

    for name, path in catalog():
        try:
            title = load_plan(path).title
        except UserError:
            title = "(invalid plan: run psgen validate)"
        typer.echo(f"{name:32} {title}")


# --- Authenticode: sign, verify, cert new (psgen.sign) ----------------------------------------

_PASSWORD_ENV_HELP = ("Environment variable holding the PFX or private-key password (never "
                      "taken from the command line); if unset you are prompted in a terminal.")


@app.command()
def sign(
    files: List[Path] = typer.Argument(..., metavar="FILE...", help="Scripts to sign (in place)."),
    cert: Path = typer.Option(..., "--cert", help="PFX/PKCS#12 file, or PEM/DER certificate "
                              "(a PEM may also hold the chain and the key)."),
    key: Optional[Path] = typer.Option(None, "--key", help="PEM/DER private key, when --cert "
                                       "is a certificate file."),
    chain: List[Path] = typer.Option([], "--chain", help="Extra intermediate CA certificates to "
                                     "include (repeatable)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Write the signed script here (one FILE only)."),
    digest: str = typer.Option("sha256", "--hash", help="sha256, sha384 or sha512."),
    timestamp_url: Optional[str] = typer.Option(
        None, "--timestamp-url", help="RFC 3161 timestamp server, so the signature stays valid "
        "after the certificate expires."),
    password_env: str = typer.Option("PSGEN_CERT_PASSWORD", "--password-env",
                                     help=_PASSWORD_ENV_HELP),
) -> None:
    """Sign PowerShell scripts with Authenticode (replaces an existing signature)."""
    from . import sign as signing

    if output is not None and len(files) != 1:
        raise UserError.single("-o/--output needs exactly one FILE",
                               hint="omit -o to sign several files in place")
    signer = signing.load_signer(cert, key, chain=chain,
                                 password=signing.password_source(password_env))
    problems = []
    for path in files:  # refuse everything Windows would reject before writing anything
        try:
            signing.check_file(path)
        except UserError as exc:
            problems.extend(exc.problems)
    if problems:
        raise UserError(problems)
    for path in files:
        target = signing.sign_file(path, signer, output=output, digest=digest,
                                   timestamp_url=timestamp_url)
        typer.echo(f"{target}: signed by {signer.subject}"
                   + (" (timestamped)" if timestamp_url else ""))


@app.command()
def verify(
    files: List[Path] = typer.Argument(..., metavar="FILE...", help="Signed scripts."),
    ca: List[Path] = typer.Option([], "--ca", help="Trusted CA certificate(s), PEM or DER "
                                  "(repeatable). Without it only integrity is checked."),
) -> None:
    """Verify Authenticode signatures; print each check in words; exit 1 if any file fails."""
    from . import sign as signing

    trusted = signing.load_certificates(ca)
    failed = 0
    for path in files:
        result = signing.verify_file(path, trusted=trusted)
        typer.echo(result.format())
        failed += not result.ok
    if failed:
        typer.echo(f"{failed} of {len(files)} file(s) failed verification", err=True)
        raise typer.Exit(1)


cert_app = typer.Typer(help="Code-signing certificates.", no_args_is_help=True)
app.add_typer(cert_app, name="cert")


@cert_app.command("new")
def cert_new(
    name: str = typer.Argument("psgen-signing", help="Writes NAME.pem (certificate), NAME.key "
                               "(private key, mode 600) and NAME.cer (DER, for Windows)."),
    subject: str = typer.Option("psgen throwaway code signing", "--subject",
                                help="Common name (CN) of the certificate."),
    key_type: str = typer.Option("rsa2048", "--key-type",
                                 help="rsa2048, rsa3072, rsa4096, p256 or p384."),
    days: int = typer.Option(365, "--days", help="Validity in days."),
    pfx: bool = typer.Option(False, "--pfx", help="Also write NAME.pfx, encrypted with the "
                             "password from --password-env (or a prompt)."),
    password_env: str = typer.Option("PSGEN_CERT_PASSWORD", "--password-env",
                                     help=_PASSWORD_ENV_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
) -> None:
    """Make a throwaway self-signed code-signing certificate (demos and tests only)."""
    from . import sign as signing

    password = signing.password_source(password_env, new=True)(f"{name}.pfx") if pfx else None
    key, certificate = signing.new_self_signed(subject, key_type=key_type, days=days)
    for path in signing.write_certificate_files(name, key, certificate, pfx_password=password,
                                                force=force):
        typer.echo(f"wrote {path}")
    typer.echo(f"thumbprint {signing.thumbprint(certificate)}; valid until "
               f"{certificate.not_valid_after_utc:%Y-%m-%d}. Sign with: psgen sign FILE "
               f"--cert {name}.pem --key {name}.key")
    typer.echo("To trust it on a Windows test machine (admin PowerShell): Import-Certificate "
               f"-FilePath {name}.cer -CertStoreLocation Cert:\\LocalMachine\\Root; and again "
               "with Cert:\\LocalMachine\\TrustedPublisher")


@app.command()
def push(
    target: str = typer.Argument(..., metavar="PLAN_OR_SCRIPT",
                                 help="A plan (file or catalog name), or a .ps1 file pushed as is."),
    host: List[str] = typer.Option([], "--host", "-H", metavar="HOST[:PORT]",
                                   help="A host to push to (repeatable)."),
    inventory: Optional[Path] = typer.Option(None, "--inventory", "-i", metavar="FILE",
                                             help="Hosts file: one HOST[:PORT] [https|http] a line, "
                                                  "or an Ansible INI/YAML inventory."),
    mode: str = typer.Option("check", "--mode", help="check, fix or rollback."),
    param: List[str] = typer.Option([], "--param", "-p", metavar="NAME=VALUE",
                                    help="A plan parameter (repeatable; typed and validated)."),
    parallel: int = typer.Option(10, "--parallel", min=1, max=1000, help="Hosts at a time."),
    timeout: float = typer.Option(600.0, "--timeout", min=0.1, metavar="SECONDS",
                                  help="Time budget per host, retries included."),
    transport: str = typer.Option("https", "--transport", help="https (port 5986) or http (5985)."),
    auth: str = typer.Option("negotiate", "--auth",
                             help="negotiate, kerberos, ntlm, basic, certificate or credssp."),
    user: Optional[str] = typer.Option(None, "--user", "-u",
                                       help="User name; the password comes from $PSGEN_PASSWORD "
                                            "or a prompt."),
    ca_file: Optional[Path] = typer.Option(None, "--ca-file", help="PEM CA bundle to verify hosts."),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify TLS certificates (unsafe)."),
    client_cert: Optional[Path] = typer.Option(None, "--client-cert", help="PEM cert (--auth certificate)."),
    client_key: Optional[Path] = typer.Option(None, "--client-key", help="PEM key (--auth certificate)."),
    as_file: bool = typer.Option(False, "--as-file",
                                 help="Copy the script to the host and run it as a file (the host's "
                                      "execution policy checks its signature)."),
    sign_cert: Optional[Path] = typer.Option(
        None, "--sign-cert", help="Sign the script before pushing (PFX or PEM certificate); "
        "with --as-file the host's execution policy then checks that signature."),
    sign_key: Optional[Path] = typer.Option(None, "--sign-key",
                                            help="With --sign-cert: the private key file."),
    sign_password_env: str = typer.Option("PSGEN_CERT_PASSWORD", "--sign-password-env",
                                          help="With --sign-cert: environment variable holding "
                                          "the key/PFX password (else a prompt)."),
    retries: int = typer.Option(2, "--retries", min=0, max=10,
                                help="Extra tries for failures before the script started."),
    results: Optional[Path] = typer.Option(None, "--results", metavar="FILE",
                                           help="Append each host's result to this JSON Lines file."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="FILE",
                                          help="Skip hosts already done in this results file."),
    junit: Optional[Path] = typer.Option(None, "--junit", metavar="FILE", help="Write JUnit XML."),
) -> None:
    """Run a plan on one host or a fleet over PSRP/WinRM. Exit 0 ok, 1 drift, 2 any failure."""
    from . import push as pushing

    script = pushing.load_script(target)
    if sign_cert is not None:
        from dataclasses import replace

        from .sign import signing_function

        sign = signing_function(sign_cert, sign_key, password_env=sign_password_env)
        script = replace(script, data=sign(script.data, script.source), local_path=None)
    elif sign_key is not None:
        raise UserError.single("--sign-key goes with --sign-cert")
    params = pushing.coerce_params(param, script)
    hosts = [pushing.parse_host(h) for h in host]
    if inventory is not None:
        hosts += pushing.load_inventory(inventory)
    if not hosts:
        raise UserError.single("no hosts given", hint="use --host HOST[:PORT] or --inventory FILE")
    options = pushing.build_options(
        transport=transport, auth=auth, user=user, ca_file=str(ca_file) if ca_file else None,
        insecure=insecure, client_cert=str(client_cert) if client_cert else None,
        client_key=str(client_key) if client_key else None, retries=retries)
    if mode.lower() not in pushing.MODES:
        raise UserError.single(f"unknown mode {mode!r}", hint="use --mode check, fix or rollback")
    for warning in pushing.connection_warnings(hosts, options, script, as_file):
        typer.secho(warning, err=True, fg="red" if warning.startswith("WARNING") else "yellow")
    options.password = pushing.get_password(options.auth, user)
    with pushing.Progress(len(hosts), live=sys.stderr.isatty()) as progress:
        report = pushing.push(
            script, hosts, mode=mode.lower(), params=params, options=options, parallel=parallel,
            timeout=timeout, as_file=as_file, results_path=results if results else resume,
            resume_path=resume, junit_path=junit, on_begin=progress.begin,
            on_result=progress.result, on_notice=progress.notice)
    if sys.stdout.isatty():
        from rich.console import Console

        pushing.render_summary(report, rich_console=Console())
    else:
        pushing.render_summary(report, write=typer.echo)
    raise typer.Exit(report.exit_code)


def main() -> None:
    """Console-script entry point: user mistakes become located messages and exit code 2.

    Typer's standalone mode handles usage errors (exit 2) and Ctrl-C (exit 1) itself.
    """
    try:
        app()
    except UserError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
