"""Every committed stack file, run through the program under Pulumi's mocks."""

from __future__ import annotations

import hashlib
import json
import tarfile
import tomllib
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml

from infra.components.zone_rollout import ZoneRejoinedProvider
from skyfleet.config.agent import parse_agent_config
from skyfleet.policy.signing import verify_envelope
from skyfleet.security.certs import check_chain, peer_identity
from tests.infra.mocks import (
    HOST_TYPES,
    StackRun,
    changed_resources,
    host_name,
    published,
    run_committed,
    run_stack,
    sent_inputs,
    stack_file_config,
    user_data,
    write_policy,
)

CLOUD_STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="module", params=CLOUD_STACKS)
def cloud_run(request, stack_runs) -> tuple[str, StackRun]:
    return request.param, stack_runs(request.param)


def test_host_counts_and_zone_spread(cloud_run):
    stack, result = cloud_run
    config = stack_file_config(stack)
    clouds = json.loads(config["skyfleet:clouds"])
    for cloud, typ in HOST_TYPES.items():
        hosts = result.mocks.of_type(typ)
        if cloud not in clouds:
            assert hosts == []
            continue
        zones = json.loads(config[f"skyfleet:{cloud}Zones"])
        per_zone = int(config[f"skyfleet:{cloud}HostsPerZone"])
        assert len(hosts) == len(zones) * per_zone
        zone_key = {"aws": lambda r: r.inputs["tags"]["skyfleet:zone"],
                    "azure": lambda r: r.inputs["zones"][0],
                    "gcp": lambda r: r.inputs["zone"]}[cloud]
        assert sorted(zone_key(h) for h in hosts) == sorted(zones * per_zone)
    assert sorted(result.exports["hosts"]) == sorted(clouds)


def test_bootstrap_config_parses_and_lists_seeds_in_every_other_cloud(cloud_run,
                                                                      stack_secrets):
    stack, result = cloud_run
    clouds = set(json.loads(stack_file_config(stack)["skyfleet:clouds"]))
    for typ in HOST_TYPES.values():
        for record in result.mocks.of_type(typ):
            document = yaml.safe_load(user_data(record).removeprefix("#cloud-config\n"))
            files = {f["path"]: f for f in document["write_files"]}
            cloud = next(c for c, t in HOST_TYPES.items() if t == typ)
            node = host_name(record)
            agent = parse_agent_config(tomllib.loads(published(result, cloud, f"config-{node}")))
            assert agent.node.name == node
            assert agent.tls.key == Path("/etc/skyfleet/tls/node.key")
            assert files["/etc/skyfleet/tls/node.key"]["permissions"] == "0600"
            # User data holds the key, never what changes later: the certificate, the CA
            # bundle and the trusted key come from the store (the sync script's list).
            assert not {"/etc/skyfleet/tls/node.pem", "/etc/skyfleet/tls/ca.pem",
                        "/etc/skyfleet/policy/keys/fleet.pub",
                        "/etc/skyfleet/agent.toml"} & set(files)
            sync = files["/usr/local/bin/skyfleet-sync"]["content"]
            assert f"hosts/{agent.node.name}/node.pem /etc/skyfleet/tls/node.pem" in sync
            # The published certificate names the node and belongs to the key.
            cert = published(result, agent.node.cloud, f"cert-{agent.node.name}").encode()
            assert peer_identity(cert).name == agent.node.name
            key = files["/etc/skyfleet/tls/node.key"]["content"].encode()
            assert check_chain(stack_secrets.ca_cert.encode(), cert, key).role == "agent"
            seed_clouds = {_cloud_of(seed) for seed in agent.seeds}
            assert seed_clouds >= clouds - {agent.node.cloud}
            assert agent.node.address not in agent.seeds
            # The policy is fetched, never baked into user data.
            assert '"signatures"' not in user_data(record)
            # The runtime is the bundle this run published, installed by hash, offline.
            bundle = result.exports["runtimeBundle"]
            install = files["/usr/local/bin/skyfleet-install"]["content"]
            assert f'echo "{bundle["sha256"]}  ' in install
            assert f"skyfleet-fetch {bundle['object']} " in install
            assert "--no-index" in install and "--require-hashes" in install
            assert not any("pip" in " ".join(cmd) for cmd in document["runcmd"])
            assert "packages" not in document  # Debian 12 has python3 and curl


def _cloud_of(endpoint: str) -> str:
    address = IPv4Address(endpoint.rsplit(":", 1)[0])
    for cloud in ("aws", "azure", "gcp"):
        for env in ("dev", "staging", "prod"):
            from infra.ipam import cloud_cidr
            if address in cloud_cidr(env, cloud):
                return cloud
    raise AssertionError(f"{endpoint} is in no planned range")


def test_published_policy_is_signed_with_the_stack_version(cloud_run, stack_secrets):
    stack, result = cloud_run
    config = stack_file_config(stack)
    envelope = json.loads(result.exports["policyEnvelope"])
    document = verify_envelope(envelope, [stack_secrets.signing_pub.encode()])
    assert document.version == int(config["skyfleet:policyVersion"])
    assert result.exports["policyVersion"] == document.version
    clouds = json.loads(config["skyfleet:clouds"])
    assert {r.name for r in result.mocks.resources if r.typ in STORE_OBJECTS
            and r.name.endswith("-policy")} == {f"policy-{c}-policy" for c in clouds}


STORE_OBJECTS = {"aws:s3/bucketObjectv2:BucketObjectv2": "key",
                 "azure-native:storage:Blob": "blobName",
                 "gcp:storage/bucketObject:BucketObject": "name"}


def test_runtime_bundle_is_published_on_every_cloud_readable_by_hosts_only(cloud_run):
    """The wheel and its locked dependencies, one content-addressed object per cloud, the
    very file whose hash the hosts' user data names; each store private to the hosts."""
    stack, result = cloud_run
    clouds = json.loads(stack_file_config(stack)["skyfleet:clouds"])
    bundle = result.exports["runtimeBundle"]
    objects = [r for r in result.mocks.resources if r.name.endswith("-runtime")]
    assert sorted(r.name for r in objects) == sorted(f"policy-{c}-runtime" for c in clouds)
    for r in objects:
        assert r.inputs[STORE_OBJECTS[r.typ]] == bundle["object"]
        source = r.inputs["source"]
        path = Path(source.path if hasattr(source, "path") else source["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == bundle["sha256"]
    with tarfile.open(path) as tar:
        names = tar.getnames()
        listing = tar.extractfile("requirements.txt").read().decode()
    assert names[0] == "requirements.txt" and any(n.startswith("skyfleet-") for n in names)
    assert all("--hash=sha256:" in line for line in listing.splitlines())
    for policy in result.mocks.of_type("aws:s3/bucketPolicy:BucketPolicy"):
        (statement,) = json.loads(policy.inputs["policy"])["Statement"]
        assert statement["Action"] == "s3:GetObject"
        assert statement["Principal"]["AWS"].startswith("arn:aws:iam::")
    for block in result.mocks.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert block.inputs["restrictPublicBuckets"] is True
    for bucket in result.mocks.of_type("gcp:storage/bucket:Bucket"):
        assert bucket.inputs["publicAccessPrevention"] == "enforced"


def test_hosts_boot_debian_12_found_by_each_clouds_image_query(cloud_run):
    _, result = cloud_run
    for token, args in result.mocks.calls:
        if token == "aws:ec2/getAmi:getAmi":
            assert args["owners"] == ["136693071363"]  # Debian's account
            assert {f["name"]: f["values"] for f in args["filters"]}["name"] == [
                "debian-12-amd64-*"]
        if token == "gcp:compute/getImage:getImage":
            assert (args["family"], args["project"]) == ("debian-12", "debian-cloud")
    for inst in result.mocks.of_type("aws:ec2/instance:Instance"):
        assert inst.inputs["ami"] == "ami-0123456789"
    for inst in result.mocks.of_type("gcp:compute/instance:Instance"):
        assert "/debian-cloud/global/images/debian-12-" in (
            inst.inputs["bootDisk"]["initializeParams"]["image"])
    for vm in result.mocks.of_type("azure-native:compute:VirtualMachine"):
        assert vm.inputs["storageProfile"]["imageReference"] == {
            "publisher": "Debian", "offer": "debian-12", "sku": "12-gen2", "version": "latest"}


def test_ranges_are_disjoint_and_security_rules_admit_only_fleet(cloud_run):
    _, result = cloud_run
    nets = [IPv4Network(r.inputs["cidrBlock"]) for r in
            result.mocks.of_type("aws:ec2/vpc:Vpc")]
    nets += [IPv4Network(p) for r in result.mocks.of_type("azure-native:network:VirtualNetwork")
             for p in r.inputs["addressSpace"]["addressPrefixes"]]
    nets += [IPv4Network(r.inputs["ipCidrRange"]) for r in
             result.mocks.of_type("gcp:compute/subnetwork:Subnetwork")]
    vnets = [n for n in nets if n.prefixlen == 16]
    assert all(not a.overlaps(b) for i, a in enumerate(vnets) for b in vnets[i + 1:])
    for sg in result.mocks.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in sg.inputs["ingress"]:
            assert "0.0.0.0/0" not in rule["cidrBlocks"] and rule["fromPort"] != 22
    for nsg in result.mocks.of_type("azure-native:network:NetworkSecurityGroup"):
        for rule in nsg.inputs["securityRules"]:
            if rule["access"] == "Allow":
                assert "*" not in rule["sourceAddressPrefixes"]
                assert "0.0.0.0/0" not in rule["sourceAddressPrefixes"]
    for fw in result.mocks.of_type("gcp:compute/firewall:Firewall"):
        assert "0.0.0.0/0" not in fw.inputs["sourceRanges"]
    for inst in result.mocks.of_type(HOST_TYPES["aws"]):
        assert inst.inputs["metadataOptions"]["httpTokens"] == "required"
        assert inst.inputs["rootBlockDevice"]["encrypted"] is True
        assert inst.inputs["associatePublicIpAddress"] is False


def test_mesh_has_redundant_tunnels_per_pair_with_distinct_asns(cloud_run):
    stack, result = cloud_run
    clouds = json.loads(stack_file_config(stack)["skyfleet:clouds"])
    tunnels = result.exports["tunnels"]
    pairs = {t["pair"] for t in tunnels}
    expected = {f"{a}-{b}" for i, a in enumerate(clouds) for b in clouds[i + 1:]}
    assert pairs == expected
    for pair in pairs:
        ours = [t for t in tunnels if t["pair"] == pair]
        assert len(ours) >= 2
        a, b = pair.split("-")
        assert ours[0][f"{a}_asn"] != ours[0][f"{b}_asn"]
    insides = [IPv4Network(t["inside"]) for t in tunnels]
    assert len(set(insides)) == len(insides)
    assert all(n.prefixlen == 30 and n.subnet_of(IPv4Network("169.254.0.0/16")) for n in insides)
    for t in tunnels:
        if "azure" in t["pair"]:
            inside = IPv4Network(t["inside"])
            assert IPv4Address("169.254.21.0") <= inside.network_address
            assert inside.broadcast_address <= IPv4Address("169.254.22.255")
    # Both ends of a tunnel hold the same PSK; tunnels never share one.
    ends = [r.inputs[k] for r in result.mocks.of_type("aws:ec2/vpnConnection:VpnConnection")
            for k in ("tunnel1PresharedKey", "tunnel2PresharedKey")]
    ends += [r.inputs["sharedSecret"] for r in
             result.mocks.of_type("gcp:compute/vPNTunnel:VPNTunnel")]
    ends += [r.inputs["sharedKey"] for r in result.mocks.of_type(
        "azure-native:network:VirtualNetworkGatewayConnection")]
    assert len(ends) == 2 * len(tunnels)
    assert len(set(ends)) == len(tunnels)
    # pulumi-random keys: 48 chars, a letter first (AWS refuses a leading 0), letters
    # and digits only (AWS takes [A-Za-z0-9._]).
    assert all(len(k) == 48 and k[0].isalpha() and k.isalnum() for k in ends)
    gateways = result.mocks.of_type("azure-native:network:VirtualNetworkGateway")
    assert len(gateways) == ("azure" in clouds)


def test_version_change_updates_publication_and_no_host(stack_runs, stack_secrets, tmp_path):
    """Same stack at policy v1 and v2: only publication objects differ; host, bootstrap and
    certificate inputs are identical, so the engine has nothing to replace or update."""
    before = stack_runs("prod")
    config = stack_file_config("prod")
    config["skyfleet:policyVersion"] = "2"
    write_policy(tmp_path, config)
    after = run_stack("prod", config, stack_secrets, tmp_path, previous=before)
    assert changed_resources(before, after) == {
        "policy-aws-policy", "policy-azure-policy", "policy-gcp-policy"}
    assert after.exports["policyVersion"] == 2


@pytest.mark.parametrize("stack", ["local", "dev", "staging", "prod"])
def test_preview_declares_the_same_resources_as_the_update(stack, stack_runs, stack_secrets,
                                                           tmp_path):
    """`pulumi preview` runs the program with unknown outputs; it must get through and
    declare every resource the update would."""
    preview = run_committed(stack, stack_secrets, tmp_path, preview=True)
    up = stack_runs(stack)
    assert sorted((r.typ, r.name) for r in preview.mocks.resources) == sorted(
        (r.typ, r.name) for r in up.mocks.resources)


def test_a_new_zone_reaches_running_hosts_through_the_store_only(stack_runs, stack_secrets,
                                                                  tmp_path):
    """prod grows GCP into us-central1-f: the new zone's hosts are created and every
    running host's new seed list is an update of its published agent config; no
    running host, key or certificate changes, and no rollout gate waits."""
    before = stack_runs("prod")
    config = stack_file_config("prod")
    zones = json.loads(config["skyfleet:gcpZones"])
    config["skyfleet:gcpZones"] = json.dumps([*zones, "us-central1-f"])
    write_policy(tmp_path, config)
    after = run_stack("prod", config, stack_secrets, tmp_path, previous=before)
    old = {(r.typ, r.name): r for r in before.mocks.resources}
    changed = {r.name for r in after.mocks.resources if (r.typ, r.name) in old
               and sent_inputs(r.inputs) != sent_inputs(old[(r.typ, r.name)].inputs)}
    running = {host_name(r) for typ in HOST_TYPES.values() for r in before.mocks.of_type(typ)}
    new_seed = next(h for h in json.loads(json.dumps(after.exports["seeds"]))
                    if h not in before.exports["seeds"])
    gates = {r.name: r for r in before.mocks.dynamic("ZoneRejoined")}
    assert changed == {f"policy-{n.split('-')[0]}-config-{n}" for n in running} | set(gates)
    # The gates see the new hosts as observers, which needs no update and no wait.
    for r in after.mocks.dynamic("ZoneRejoined"):
        if r.name in gates:
            assert not ZoneRejoinedProvider().diff(r.name, gates[r.name].inputs,
                                                   r.inputs).changes
    for node in running:
        config_text = published(after, node.split("-")[0], f"config-{node}")
        assert new_seed in parse_agent_config(tomllib.loads(config_text)).seeds


def test_raising_a_tunnels_key_generation_re_keys_that_tunnel_alone(stack_runs,
                                                                    stack_secrets, tmp_path):
    before = stack_runs("prod")
    label = before.exports["tunnels"][0]["name"]
    config = stack_file_config("prod")
    config["skyfleet:tunnelKeyGenerations"] = json.dumps({label: 1})
    write_policy(tmp_path, config)
    after = run_stack("prod", config, stack_secrets, tmp_path, previous=before)
    changed = changed_resources(before, after)
    assert f"mesh-psk-{label}" in changed
    # Its two ends take the new key; no other tunnel, no host, nothing else.
    ends = {r.name for r in after.mocks.resources if r.name in changed
            and r.typ in ("aws:ec2/vpnConnection:VpnConnection", "gcp:compute/vPNTunnel:VPNTunnel",
                          "azure-native:network:VirtualNetworkGatewayConnection")}
    assert changed == {f"mesh-psk-{label}"} | ends
    assert 1 <= len(ends) <= 2


def test_committed_stacks_leave_the_handlers_to_the_agents_default(cloud_run):
    """No committed stack sets `<cloud>Handlers`: every host's config is as it was before
    the key (no [tasks] table), so no published config object changes with its arrival."""
    _stack, result = cloud_run
    for cloud, typ in HOST_TYPES.items():
        for record in result.mocks.of_type(typ):
            text = published(result, cloud, f"config-{host_name(record)}")
            assert "[tasks]" not in text
            assert parse_agent_config(tomllib.loads(text)).tasks.handlers is None


def test_each_clouds_hosts_serve_its_configured_handlers(stack_secrets, tmp_path):
    """A mixed staging fleet: the cpu-bound handler on AWS only, the tools on both."""
    config = stack_file_config("staging")
    config["skyfleet:awsHandlers"] = json.dumps(["cpu", "echo"])
    config["skyfleet:azureHandlers"] = json.dumps(["echo", "sleep"])
    write_policy(tmp_path, config)
    run = run_stack("staging", config, stack_secrets, tmp_path)
    served = {}
    for cloud, typ in HOST_TYPES.items():
        for record in run.mocks.of_type(typ):
            text = published(run, cloud, f"config-{host_name(record)}")
            served[host_name(record)] = parse_agent_config(tomllib.loads(text)).tasks.handlers
    assert served and all(
        handlers == {"aws": ("cpu", "echo"), "azure": ("echo", "sleep")}[node.split("-")[0]]
        for node, handlers in served.items()), served


def test_committed_cloud_stacks_write_no_handler_table(cloud_run):
    """No committed cloud stack sets `handlerSettings`: no published config changes with
    the key's arrival."""
    _stack, result = cloud_run
    for cloud, typ in HOST_TYPES.items():
        for record in result.mocks.of_type(typ):
            text = published(result, cloud, f"config-{host_name(record)}")
            assert "[handlers." not in text
            assert parse_agent_config(tomllib.loads(text)).handler_config == {}


def test_handler_settings_reach_the_published_config_of_every_host_serving_it(stack_secrets,
                                                                             tmp_path):
    """staging, the assistant served on Azure only: its table is in every Azure host's
    published agent config, as the agent parses it, and in no AWS host's (an agent
    refuses a table for a handler it does not serve)."""
    table = {"base_url": "https://models.internal/v1", "model": "llama-3.1-8b",
             "api_key_env": "MODEL_API_KEY", "max_tokens": 512}
    config = stack_file_config("staging")
    config["skyfleet:awsHandlers"] = json.dumps(["echo"])
    config["skyfleet:azureHandlers"] = json.dumps(["assistant", "echo"])
    config["skyfleet:handlerSettings"] = json.dumps({"assistant": table})
    write_policy(tmp_path, config)
    run = run_stack("staging", config, stack_secrets, tmp_path)
    tables = {}
    for cloud, typ in HOST_TYPES.items():
        for record in run.mocks.of_type(typ):
            text = published(run, cloud, f"config-{host_name(record)}")
            tables[host_name(record)] = parse_agent_config(tomllib.loads(text)).handler_config
    assert any(n.startswith("azure") for n in tables) and any(
        n.startswith("aws") for n in tables)
    for node, handler_config in tables.items():
        assert handler_config == ({"assistant": table} if node.startswith("azure") else {}), node
    for record in run.mocks.of_type(HOST_TYPES["azure"]):
        assert "[handlers." not in user_data(record)  # the config comes from the store


def test_new_handler_settings_reach_running_hosts_through_the_store_only(stack_runs,
                                                                        stack_secrets, tmp_path):
    """Settings are in the published agent configs, never in user data: setting them
    changes each host's config object and nothing else (no host is replaced, and the
    hosts' fetch timer brings the new file)."""
    before = stack_runs("prod")
    config = stack_file_config("prod")
    config["skyfleet:handlerSettings"] = json.dumps(
        {"assistant": {"base_url": "https://models.internal/v1", "model": "m"}})
    write_policy(tmp_path, config)
    after = run_stack("prod", config, stack_secrets, tmp_path, previous=before)
    hosts = {cloud: [host_name(r) for r in after.mocks.of_type(typ)]
             for cloud, typ in HOST_TYPES.items()}
    assert changed_resources(before, after) == {
        f"policy-{cloud}-config-{node}" for cloud, nodes in hosts.items() for node in nodes}
