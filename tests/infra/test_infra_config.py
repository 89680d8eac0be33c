"""Stack config validation: every invalid config fails naming its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import LOCAL_HOST_PLACEHOLDER, StackConfigError, load_stack_config, resolve_host
from infra.ipam import cloud_cidr, host_address, zone_subnets
from infra.mesh_plan import MeshPlanError, Tunnel, check_mesh, plan_mesh
from infra.stack_files import missing_keys, project_schema, stack_config
from infra.topology import plan_hosts
from skyfleet.tasks.handlers import builtin_handlers, installed_handlers
from tests.infra.mocks import REPO_ROOT, stack_file_config


def source_for(stack: str, root: Path, **overrides: object):
    config = {k.removeprefix("skyfleet:"): v for k, v in stack_file_config(stack).items()}
    for key, value in overrides.items():
        config[key] = value if isinstance(value, str) or value is None else json.dumps(value)
    committed = stack_file_config(stack)["skyfleet:policyFile"]
    policy = root / committed
    policy.parent.mkdir(parents=True, exist_ok=True)
    if not policy.exists():
        policy.write_text((REPO_ROOT / committed).read_text())
    return config.get


@pytest.mark.parametrize("stack", ["local", "dev", "staging", "prod"])
def test_committed_stacks_load_with_the_committed_policy(stack):
    config = stack_file_config(stack)
    cfg = load_stack_config(lambda k: config.get(f"skyfleet:{k}"), stack, REPO_ROOT)
    assert cfg.environment == stack
    assert cfg.policy_document["version"] == cfg.policy_version


@pytest.mark.parametrize(
    ("stack", "overrides", "key"),
    [
        ("prod", {"clouds": ["aws", "oracle", "gcp"]}, "skyfleet:clouds"),
        ("staging", {"clouds": ["aws"]}, "skyfleet:clouds"),
        ("prod", {"awsRegion": "mars-1"}, "skyfleet:awsRegion"),
        ("prod", {"gcpZones": ["us-central1-a", "us-central1-b"]}, "skyfleet:gcpZones"),
        ("prod", {"awsZones": ["us-east-1a", "us-west-2b", "us-east-1c"]}, "skyfleet:awsZones"),
        ("prod", {"azureHostsPerZone": "1"}, "skyfleet:azureHostsPerZone"),
        ("dev", {"awsZones": ["us-east-1a"]}, "skyfleet:awsZones"),
        ("dev", {"awsHostsPerZone": "many"}, "skyfleet:awsHostsPerZone"),
        ("staging", {"azureCidr": "10.33.0.0/16"}, "skyfleet:azureCidr"),
        ("prod", {"gcpCidr": "10.17.0.0/16"}, "skyfleet:gcpCidr"),
        ("prod", {"adminRanges": ["0.0.0.0/0"]}, "skyfleet:adminRanges[0]"),
        ("dev", {"policyFile": "policies/missing.json"}, "skyfleet:policyFile"),
        ("dev", {"policyFile": "../etc/passwd"}, "skyfleet:policyFile"),
        ("dev", {"policyVersion": "7"}, "skyfleet:policyVersion"),
        ("dev", {"environment": "qa"}, "skyfleet:environment"),
        ("dev", {"awsInstanceSize": "t3-small"}, "skyfleet:awsInstanceSize"),
        ("dev", {"runtimeIndex": "http://pypi.internal/simple/"}, "skyfleet:runtimeIndex"),
        ("prod", {"tunnelKeyGenerations": {"prod-aws-gcp-9": 1}}, "skyfleet:tunnelKeyGenerations"),
        ("prod", {"tunnelKeyGenerations": {"prod-aws-gcp-0": -1}}, "skyfleet:tunnelKeyGenerations"),
        ("prod", {"tunnelKeyGenerations": "[1]"}, "skyfleet:tunnelKeyGenerations"),
        ("dev", {"runtimeIndex": "pypi.internal/simple"}, "skyfleet:runtimeIndex"),
        ("dev", {"awsInstanceSize": "t4g.small"}, "skyfleet:awsInstanceSize"),
        ("staging", {"azureInstanceSize": "Standard_D2ps_v5"}, "skyfleet:azureInstanceSize"),
        ("prod", {"gcpInstanceSize": "c4a-standard-4"}, "skyfleet:gcpInstanceSize"),
        ("prod", {"gcpInstanceSize": "n2.standard.4"}, "skyfleet:gcpInstanceSize"),
        ("staging", {"azureHandlers": []}, "skyfleet:azureHandlers"),
        ("prod", {"gcpHandlers": ["echo", "gpu-embed"]}, "skyfleet:gcpHandlers"),
        ("dev", {"awsHandlers": ["echo", "echo"]}, "skyfleet:awsHandlers"),
        ("dev", {"awsHandlers": "echo"}, "skyfleet:awsHandlers"),
        ("local", {"awsHandlers": ["Echo"]}, "skyfleet:awsHandlers"),
        ("dev", {"handlerSettings": "[1]"}, "skyfleet:handlerSettings"),
        ("dev", {"handlerSettings": {"gpt": {"model": "m"}}}, "skyfleet:handlerSettings.gpt"),
        ("dev", {"handlerSettings": {"assistant": "m"}}, "skyfleet:handlerSettings.assistant"),
        ("dev", {"handlerSettings": {"assistant": {"api_key": "sk-1"}}},
         "skyfleet:handlerSettings.assistant.api_key"),
        ("dev", {"handlerSettings": {"assistant": {"model": {"name": "m"}}}},
         "skyfleet:handlerSettings.assistant.model"),
        ("dev", {"handlerSettings": {"assistant": {"stop": [["a"]]}}},
         "skyfleet:handlerSettings.assistant.stop"),
        ("dev", {"handlerSettings": {"assistant": {"temperature": None}}},
         "skyfleet:handlerSettings.assistant.temperature"),
        ("dev", {"handlerSettings": '{"assistant": {"temperature": NaN}}'},
         "skyfleet:handlerSettings.assistant.temperature"),
        ("prod", {"handlerSettings": {"assistant": {"base_url": "http://{host}:8000/v1"}}},
         "skyfleet:handlerSettings.assistant.base_url"),
        ("dev", {"awsHandlers": ["echo"], "handlerSettings": {"assistant": {"model": "m"}}},
         "skyfleet:handlerSettings.assistant"),
    ],
)
def test_invalid_config_names_its_key(stack, overrides, key, tmp_path):
    with pytest.raises(StackConfigError) as err:
        load_stack_config(source_for(stack, tmp_path, **overrides), stack, tmp_path)
    assert str(err.value).startswith(f"{key}:")


def test_invalid_policy_document_names_the_file(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.json").write_text(json.dumps({"version": "one"}))
    with pytest.raises(StackConfigError, match=r"^skyfleet:policyFile: policies/default"):
        load_stack_config(source_for("dev", tmp_path), "dev", tmp_path)


def test_a_signed_envelope_as_policy_file_is_refused_naming_the_key(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.json").write_text(json.dumps(
        {"document": {"version": 1}, "signatures": []}))
    with pytest.raises(StackConfigError, match=r"^skyfleet:policyFile: policies/default.json "
                       r"is a signed envelope"):
        load_stack_config(source_for("dev", tmp_path), "dev", tmp_path)


def test_a_policy_file_nested_too_deep_is_refused_naming_the_key(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.json").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(StackConfigError, match=r"^skyfleet:policyFile: .* nests deeper"):
        load_stack_config(source_for("dev", tmp_path), "dev", tmp_path)


def test_address_plan_is_disjoint_across_environments_and_clouds():
    nets = [cloud_cidr(e, c) for e in ("local", "dev", "staging", "prod")
            for c in ("aws", "azure", "gcp")]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    subnets = zone_subnets(cloud_cidr("prod", "aws"), 3)
    assert [str(s) for s in subnets] == ["10.49.0.0/20", "10.49.16.0/20", "10.49.32.0/20"]
    assert str(host_address(subnets[1], 0)) == "10.49.16.10"


@pytest.mark.parametrize(
    ("clouds", "count"),
    [(("aws",), 0), (("aws", "gcp"), 4), (("aws", "azure"), 4), (("azure", "gcp"), 2),
     (("aws", "azure", "gcp"), 10)],
)
def test_mesh_plan_tunnel_counts(clouds, count):
    assert len(plan_mesh("prod", clouds)) == count


def test_mesh_plan_rejects_broken_inside_ranges():
    from ipaddress import IPv4Network

    good = plan_mesh("prod", ("aws", "azure", "gcp"))
    overlapping = good + (Tunnel("aws", "gcp", 9, 0, 0, good[0].inside, "dup"),)
    with pytest.raises(MeshPlanError, match="^dup: .* overlaps"):
        check_mesh(overlapping)
    outside = (Tunnel("aws", "azure", 0, 0, 0, IPv4Network("169.254.30.0/30"), "x"),)
    with pytest.raises(MeshPlanError, match="APIPA"):
        check_mesh(outside)
    reserved = (Tunnel("aws", "gcp", 0, 0, 0, IPv4Network("169.254.1.0/30"), "r"),)
    with pytest.raises(MeshPlanError, match="reserved by AWS"):
        check_mesh(reserved)


@pytest.mark.parametrize("stack", ["local", "dev", "staging", "prod"])
def test_every_committed_stack_sets_what_pulumi_yaml_requires(stack):
    """The CLI's check, read from the files (the real CLI's is in test_infra_engine)."""
    assert missing_keys(REPO_ROOT, stack) == []


@pytest.mark.parametrize("stack", ["local", "dev", "prod"])
def test_pulumi_yaml_defaults_are_the_loaders_own(stack):
    """A key left out gives the same StackConfig whether the CLI filled in Pulumi.yaml's
    default or the loader fell back to its own: the two never drift apart."""
    with_defaults = stack_config(REPO_ROOT, stack)
    declared = {k for k, decl in project_schema(REPO_ROOT).items() if "default" in decl}
    bare = {k: v for k, v in with_defaults.items() if k not in declared
            or k in yaml_stack_keys(stack)}
    assert bare != with_defaults  # some default is really left out
    a = load_stack_config(lambda k: with_defaults.get(f"skyfleet:{k}"), stack, REPO_ROOT)
    b = load_stack_config(lambda k: bare.get(f"skyfleet:{k}"), stack, REPO_ROOT)
    assert a == b


def yaml_stack_keys(stack: str) -> set[str]:
    import yaml

    return set(yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"])


@pytest.mark.parametrize(("stack", "overrides"), [
    # Tokyo on every cloud, refused by the old hand-kept list of six regions per cloud.
    ("prod", {"awsRegion": "ap-northeast-1",
              "awsZones": ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"],
              "azureRegion": "japaneast", "gcpRegion": "asia-northeast1",
              "gcpZones": ["asia-northeast1-a", "asia-northeast1-b", "asia-northeast1-c"]}),
    ("prod", {"gcpRegion": "us-east1", "gcpZones": ["us-east1-b", "us-east1-c", "us-east1-d"]}),
    ("dev", {"awsRegion": "us-west-1", "awsZones": ["us-west-1a", "us-west-1c"]}),
    ("prod", {"awsInstanceSize": "m7i.2xlarge", "azureInstanceSize": "Standard_D4s_v5",
              "gcpInstanceSize": "n2d-highmem-8"}),
])
def test_every_listed_region_and_x86_size_is_accepted(stack, overrides, tmp_path):
    cfg = load_stack_config(source_for(stack, tmp_path, **overrides), stack, tmp_path)
    by_cloud = {c.cloud: c for c in cfg.clouds}
    for name, value in overrides.items():
        cloud = next(c for c in ("aws", "azure", "gcp") if name.startswith(c))
        field = {"Region": "region", "Zones": "zones", "InstanceSize": "instance_size"}[
            name.removeprefix(cloud)]
        got = getattr(by_cloud[cloud], field)
        assert (list(got) if isinstance(got, tuple) else got) == value


@pytest.mark.parametrize(("stack", "overrides", "message"), [
    ("prod", {"gcpRegion": "asia-northeast9"},
     "skyfleet:gcpRegion: unknown gcp region 'asia-northeast9' for prod; nearest: "
     "asia-northeast1, asia-northeast2, asia-northeast3"),
    ("prod", {"azureRegion": "japan-east"},
     "skyfleet:azureRegion: unknown azure region 'japan-east' for prod; nearest: japaneast"),
    ("prod", {"gcpZones": ["us-central1-a", "us-central1-b", "us-central1-d"]},
     "skyfleet:gcpZones: 'us-central1-d' is not a zone of us-central1 (its zones: "
     "us-central1-a, us-central1-b, us-central1-c, us-central1-f)"),
    # Two zones: dev may, prod may not.
    ("prod", {"awsRegion": "us-west-1", "awsZones": ["us-west-1a", "us-west-1c"]},
     "skyfleet:awsZones: prod needs at least 3 zones, got 2"),
])
def test_unknown_region_or_zone_names_the_key_and_what_exists(stack, overrides, message,
                                                               tmp_path):
    with pytest.raises(StackConfigError) as err:
        load_stack_config(source_for(stack, tmp_path, **overrides), stack, tmp_path)
    assert str(err.value) == message


@pytest.mark.parametrize(("stack", "overrides", "message"), [
    ("prod", {"gcpHandlers": ["echo", "gpu-embed"]},
     "skyfleet:gcpHandlers: no handler named 'gpu-embed' (installed: {installed})"),
    ("staging", {"azureHandlers": []},
     "skyfleet:azureHandlers: empty; a host that serves no handler has no business in the "
     "fleet"),
])
def test_a_bad_handler_list_names_the_key_and_the_handler(stack, overrides, message, tmp_path):
    with pytest.raises(StackConfigError) as err:
        load_stack_config(source_for(stack, tmp_path, **overrides), stack, tmp_path)
    assert str(err.value) == message.format(installed=", ".join(sorted(installed_handlers())))


@pytest.mark.parametrize(("overrides", "expected"), [
    # Left out, or every built-in one in any order: the agent's default (None), so the
    # agent configs of stacks written before the key stay as they were.
    ({}, {"aws": None, "azure": None, "gcp": None}),
    ({"azureHandlers": ["sleep", "echo", "chunks", "cpu"]},
     {"aws": None, "azure": None, "gcp": None}),
    # A mixed fleet: the GPU-like handler on one cloud, the tools on all.
    ({"awsHandlers": ["cpu", "echo"], "azureHandlers": ["echo", "sleep"],
      "gcpHandlers": ["echo"]},
     {"aws": ("cpu", "echo"), "azure": ("echo", "sleep"), "gcp": ("echo",)}),
])
def test_each_cloud_serves_its_configured_handlers(overrides, expected, tmp_path):
    cfg = load_stack_config(source_for("prod", tmp_path, **overrides), "prod", tmp_path)
    assert {c.cloud: c.handlers for c in cfg.clouds} == expected
    assert {h.cloud: h.handlers for h in plan_hosts(cfg)} == expected


def test_the_default_handlers_are_every_built_in_one():
    """Pulumi.yaml declares the handlers pyproject declares, every one loadable here."""
    schema = project_schema(REPO_ROOT)
    for cloud in ("aws", "azure", "gcp"):
        assert schema[f"skyfleet:{cloud}Handlers"]["default"] == list(builtin_handlers())
    assert set(builtin_handlers()) <= installed_handlers()


def test_handler_settings_refuse_a_secret_saying_how_to_name_it(tmp_path):
    with pytest.raises(StackConfigError) as err:
        load_stack_config(source_for("dev", tmp_path, handlerSettings={
            "assistant": {"base_url": "https://models.internal/v1", "token": "t0k3n"}}),
            "dev", tmp_path)
    message = str(err.value)
    assert message.startswith("skyfleet:handlerSettings.assistant.token: a secret")
    assert "token_env" in message and "token_file" in message and "t0k3n" not in message


@pytest.mark.parametrize(("stack", "overrides", "expected"), [
    # Left out: no table anywhere, so the agent configs stay as they were before the key.
    ("prod", {}, {"aws": {}, "azure": {}, "gcp": {}}),
    # A table reaches the hosts that serve its handler, and only those.
    ("prod", {"awsHandlers": ["echo"], "handlerSettings": {
        "assistant": {"base_url": "https://models.internal/v1", "model": "m",
                      "max_tokens": 256, "stop": ["END", "STOP"]}}},
     {"aws": {}, **dict.fromkeys(("azure", "gcp"), {"assistant": {
         "base_url": "https://models.internal/v1", "model": "m", "max_tokens": 256,
         "stop": ["END", "STOP"]}})}),
])
def test_handler_settings_reach_every_host_that_serves_the_handler(stack, overrides, expected,
                                                                    tmp_path):
    cfg = load_stack_config(source_for(stack, tmp_path, **overrides), stack, tmp_path)
    for host in plan_hosts(cfg):
        assert host.handler_settings == expected[host.cloud], host.name


def test_the_local_stack_names_the_stand_in_model_for_the_assistant():
    config = stack_file_config("local")
    cfg = load_stack_config(lambda k: config.get(f"skyfleet:{k}"), "local", REPO_ROOT)
    table = cfg.handler_settings["assistant"]
    assert table["base_url"] == f"http://{LOCAL_HOST_PLACEHOLDER}:7490/v1"
    assert resolve_host(cfg.handler_settings, "10.200.0.1")["assistant"]["base_url"] == (
        "http://10.200.0.1:7490/v1")
    assert table["model"] and "api_key" not in table


def test_resolve_host_fills_in_strings_and_lists_only():
    settings = {"h": {"url": "http://{host}:1", "hosts": ["{host}", 3], "n": 2, "b": True}}
    assert resolve_host(settings, "127.0.0.1") == {
        "h": {"url": "http://127.0.0.1:1", "hosts": ["127.0.0.1", 3], "n": 2, "b": True}}
    assert settings["h"]["url"] == "http://{host}:1"  # a copy: the config is not changed
