"""`closeloop billing …` and `closeloop license …` (registered from cli.py)."""
from __future__ import annotations

import json
import os
from datetime import date, datetime, timezone
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from closeloop.bootstrap import build
from closeloop.config import Settings, load_settings
from closeloop.license_signing import load_signing_key, private_key_pem, public_key_pem, signer
from flows.billing_run import run_billing
from flows.license_keys import LicenseKeyError, LicenseKeyExpired, key_id, mint_license_key, verify_key


def _settings() -> Settings:
    try:
        return load_settings()
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None


@click.group()
def billing() -> None:
    """Recurring billing."""


@billing.command("run")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="bill the periods started by this date (default: today in CLOSELOOP_TIMEZONE)")
def billing_run(as_of: datetime | None) -> None:
    """Invoice every subscription period that has started: once each, however often it runs."""
    services = build(_settings())
    day: date | None = as_of.date() if as_of else None
    click.echo(run_billing(services.ledger, day).summary())


@click.group("license")
def license_group() -> None:
    """Signed license keys (Ed25519)."""


@license_group.command("verify")
@click.argument("key")
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM public key (default: the public half of the configured signing key)")
def license_verify(key: str, public_key: Path | None) -> None:
    """Print a key's claims; exit 1 if it is not genuine, 2 if it is expired or not yet valid."""
    if public_key is not None:
        loaded = load_pem_public_key(public_key.read_bytes())
    else:
        try:
            loaded = load_signing_key(_settings(), create=False).public_key()
        except (OSError, ValueError) as error:
            raise click.ClickException(f"no public key to verify with ({error}); pass --public-key FILE") from None
    try:
        claims = verify_key(key, loaded, datetime.now(timezone.utc))  # type: ignore[arg-type]
    except LicenseKeyExpired as error:
        click.echo(json.dumps(error.claims, indent=2, sort_keys=True, ensure_ascii=False))
        click.echo(f"license key genuine but not valid now: {error}", err=True)
        raise SystemExit(2) from None
    except LicenseKeyError as error:
        click.echo(f"license key invalid: {error}", err=True)
        raise SystemExit(1) from None
    click.echo(json.dumps(claims, indent=2, sort_keys=True, ensure_ascii=False))
    click.echo("license key valid", err=True)


@license_group.command("keygen")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="where to write the new private key (PEM, mode 0600; never overwritten)")
def license_keygen(out: Path) -> None:
    """Make a new signing key; set CLOSELOOP_LICENSE_SIGNING_KEY_FILE to use it."""
    key = Ed25519PrivateKey.generate()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{out} exists; keys are never overwritten (keys already issued need it)") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(key))
    click.echo(f"# key id {key_id(key.public_key())}; private key in {out}\n{public_key_pem(key.public_key())}", nl=False)


@license_group.command("public-key")
def license_public_key() -> None:
    """Print the public key (PEM) the product verifies keys with."""
    try:
        key = load_signing_key(_settings())
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"# key id {key_id(key.public_key())}\n{public_key_pem(key.public_key())}", nl=False)


@license_group.command("key")
@click.argument("license_id", type=int)
def license_key(license_id: int) -> None:
    """Print the signed key of a license (minted now if it has none)."""
    settings = _settings()
    services = build(settings)
    click.echo(services.ledger.run(mint_license_key, license_id, signer(settings)))
