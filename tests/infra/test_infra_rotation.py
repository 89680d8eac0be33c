"""Rotations through the stack, each the documented `pulumi config set` + `pulumi up`
sequence (docs/operations.md), run under the engine mocks one step after another on one
state: every step changes store objects and certificates only, never a host or a key,
and every host can check every published certificate at every step."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from infra.components.zone_rollout import ZoneRejoinedProvider
from skyfleet.policy.signing import generate_signing_key, verify_envelope
from skyfleet.security.certs import check_chain, create_ca
from tests.infra.mocks import (
    HOST_TYPES,
    StackRun,
    StackSecretsFixture,
    changed_resources,
    host_name,
    published,
    run_stack,
    stack_file_config,
    user_data,
    write_policy,
)

STACK = "prod"
CLOUDS = ("aws", "azure", "gcp")


def node_keys(run: StackRun) -> dict[str, str]:
    """Node -> the key its user data carries."""
    keys = {}
    for typ in HOST_TYPES.values():
        for record in run.mocks.of_type(typ):
            doc = yaml.safe_load(user_data(record).removeprefix("#cloud-config\n"))
            files = {f["path"]: f["content"] for f in doc["write_files"]}
            keys[host_name(record)] = files["/etc/skyfleet/tls/node.key"]
    return keys


def every_host_checks_out(run: StackRun) -> None:
    """Each host's published certificate, with the key in its user data, is valid
    under the CA bundle its cloud publishes."""
    keys = node_keys(run)
    for name, key in keys.items():
        cloud = name.split("-")[0]
        bundle = published(run, cloud, "ca").encode()
        cert = published(run, cloud, f"cert-{name}").encode()
        assert check_chain(bundle, cert, key.encode()).name == name


class Steps:
    def __init__(self, secrets: StackSecretsFixture, root: Path) -> None:
        self.config = stack_file_config(STACK)
        write_policy(root, self.config)
        self.secrets, self.root = secrets, root
        self.run = run_stack(STACK, self.config, secrets, root)

    def up(self, **config: str | None) -> set[str]:
        """`pulumi config set` (None: `config rm`) each key, then `pulumi up`; the names
        of the resources whose inputs changed."""
        for key, value in config.items():
            if value is None:
                self.config.pop(f"skyfleet:{key}", None)
            else:
                self.config[f"skyfleet:{key}"] = value
        before, self.run = self.run, run_stack(STACK, self.config, self.secrets, self.root,
                                               previous=self.run)
        return changed_resources(before, self.run)


def objects(*suffixes: str) -> set[str]:
    return {f"policy-{c}-{s}" for c in CLOUDS for s in suffixes}


def gates(run: StackRun) -> set[str]:
    return {r.name for r in run.mocks.dynamic("ZoneRejoined")}


def gates_wait_for_nothing(steps: Steps, before: StackRun) -> None:
    """The rollout gates dial with the CA bundle, so their inputs change with it, but
    their provider sees no new runtime and no new hosts: no update, no wait."""
    old = {r.name: r.inputs for r in before.mocks.dynamic("ZoneRejoined")}
    for r in steps.run.mocks.dynamic("ZoneRejoined"):
        assert not ZoneRejoinedProvider().diff(r.name, old[r.name], r.inputs).changes


def test_ca_rotation_in_three_ups_touches_no_host(stack_secrets, tmp_path) -> None:
    steps = Steps(stack_secrets, tmp_path)
    hosts = set(node_keys(steps.run))
    certs = {f"policy-{h.split('-')[0]}-cert-{h}" for h in hosts}
    signed = {f"{r.name}" for r in steps.run.mocks.of_type(
        "tls:index/locallySignedCert:LocallySignedCert")}
    keys_before = node_keys(steps.run)
    old = (stack_secrets.ca_cert, stack_secrets.ca_key)
    new_cert, new_key = (p.decode() for p in create_ca("next fleet CA"))

    rollout = gates(steps.run)
    # 1. Trust the next CA beside the current one.
    before = steps.run
    assert steps.up(caTrustExtra=new_cert) == objects("ca") | rollout
    gates_wait_for_nothing(steps, before)
    every_host_checks_out(steps.run)
    # 2. Issue from the next CA, still trusting the old: every certificate re-signed
    #    (same keys), published; hosts untouched.
    steps.secrets = StackSecretsFixture(new_cert, new_key, stack_secrets.signing_key,
                                        stack_secrets.signing_pub)
    before = steps.run
    assert steps.up(caTrustExtra=old[0]) == objects("ca") | certs | signed | rollout
    gates_wait_for_nothing(steps, before)
    every_host_checks_out(steps.run)
    # 3. Drop the old CA.
    assert steps.up(caTrustExtra=None) == objects("ca") | rollout
    every_host_checks_out(steps.run)
    assert node_keys(steps.run) == keys_before
    assert published(steps.run, "aws", "ca").strip() == new_cert.strip()


def test_signing_key_rotation_in_three_ups_touches_no_host(stack_secrets, tmp_path) -> None:
    steps = Steps(stack_secrets, tmp_path)
    private, public = (p.decode() for p in generate_signing_key())

    assert steps.up(policyKeysExtra=public) == objects("trusted-key")
    steps.secrets = StackSecretsFixture(stack_secrets.ca_cert, stack_secrets.ca_key,
                                        private, public)
    assert steps.up(policyKeysExtra=stack_secrets.signing_pub) == objects(
        "trusted-key", "policy")
    envelope = json.loads(steps.run.exports["policyEnvelope"])
    trusted = published(steps.run, "gcp", "trusted-key")
    assert trusted.count("BEGIN PUBLIC KEY") == 2
    verify_envelope(envelope, [public.encode()])
    assert steps.up(policyKeysExtra=None) == objects("trusted-key")
    assert published(steps.run, "gcp", "trusted-key").strip() == public.strip()
