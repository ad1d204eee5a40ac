"""The YAML contract: errors name the file, the entry and the field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dizuo.app import Platform, create_app, load_settings, prepare
from dizuo.config import load_config
from dizuo.errors import ConfigError


def build_app(path: Path, tmp_path: Path) -> Platform:
    """Prepare a fresh database and build the app, as `dizuo serve` does."""
    settings = load_settings(path, data_dir=tmp_path)
    prepare(settings)
    return create_app(settings)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dizuo.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_issue_example_is_valid(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
deployments:
  - name: deepseek-cq
    model: deepseek-chat
    provider: deepseek
    base_url: https://api.deepseek.com/v1
    api_key: env:DEEPSEEK_API_KEY
    upstream_model: deepseek-chat
    region: cq
    cloud: public
    accelerator: nvidia-h800
    data_class_max: general
    price: {input: 2.0, output: 8.0}
    limits: {rpm: 600, tpm: 1000000, concurrency: 64}
    weight: 1
    priority: 0
""",
        )
    )
    dep = config.deployments[0]
    assert (dep.region, dep.cloud, dep.limits.rpm) == ("cq", "public", 600)
    assert str(dep.price.input) == "2.0"  # type: ignore[union-attr]
    assert config.local is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "deployments:\n  - {name: a, model: m, provider: qwen, price: {input: -1, output: 1}}\n",
            "dizuo.yaml: deployments[0] (a): price.input: Input should be greater than or equal to 0",
        ),
        (
            "deployments:\n  - {name: a, model: m, provider: qwen, cloud: moon}\n",
            "deployments[0] (a): cloud: Input should be 'public', 'private' or 'local'",
        ),
        (
            "deployments:\n  - {name: a, model: m, provider: qwen, colour: red}\n",
            "deployments[0] (a): colour: Extra inputs are not permitted",
        ),
        ("deployments:\n  - {name: a, provider: qwen}\n", "deployments[0] (a): model: Field required"),
        (  # the usage records' column: a longer region would be refused with every record
            "deployments:\n  - {name: a, model: m, provider: qwen, region: " + "r" * 65 + "}\n",
            "deployments[0] (a): region: String should have at most 64 characters",
        ),
        (
            "deployments:\n  - {name: a, model: m, provider: qwen}\n  - {name: a, model: n, provider: qwen}\n",
            "the name 'a' is used twice",
        ),
        (
            "pools:\n  - {name: cq-ascend, price: {accelerator_hour: -9.8}}\n",
            "dizuo.yaml: pools[0] (cq-ascend): price.accelerator_hour: Input should be greater than or equal to 0",
        ),
        (
            "pools:\n  - {name: cq, ray: head.cq:8265}\n",
            "pools[0] (cq): ray: Value error, must be embedded or an http(s):// address of a Ray Jobs API",
        ),
        (
            "pools:\n  - {name: cq, max_job_hours: 0}\n",
            "pools[0] (cq): max_job_hours: Input should be greater than 0",
        ),
        ("pools:\n  - {name: cq}\n  - {name: cq, region: xj}\n", "pools[1]: the name 'cq' is used twice"),
        ("deployments: [\n", "not valid YAML"),
        ("- just a list\n", "the top level must be a mapping"),
    ],
)
def test_errors_name_file_entry_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert expected in str(caught.value)
    assert "dizuo.yaml" in str(caught.value)


def test_the_issues_pool_example_is_valid(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
pools:
  - name: cq-ascend            # unique
    region: cq
    ray: embedded              # or http://head.cq.example:8265 (the Ray Jobs API of a cluster)
    accelerator: ascend-910b
    resources: {accelerator_resource: NPU}
    price: {accelerator_hour: 9.80, cpu_hour: 0.12, memory_gb_hour: 0.02}   # CNY
    data_class_max: important
    max_job_hours: 72
  - {name: xj-a100, region: xj, ray: "http://head.xj.example:8265/", accelerator: a100}
""",
        )
    )
    cq, xj = config.pools
    # YAML reads 9.80 and 0.12 as floats: the prices are still the exact decimals written.
    assert (cq.resources.accelerator_resource, cq.price.accelerator_hour, cq.price.cpu_hour) == (
        "NPU",
        Decimal("9.80"),
        Decimal("0.12"),
    )
    assert cq.max_job_hours == 72
    assert (xj.ray, xj.resources.accelerator_resource, xj.data_class_max) == (
        "http://head.xj.example:8265",
        "GPU",
        "general",
    )


def test_unknown_provider_lists_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "deployments:\n  - {name: x1, model: m, provider: deepsek}\n")
    with pytest.raises(ConfigError) as caught:
        build_app(path, tmp_path)
    message = str(caught.value)
    assert "deployments[0] (x1): provider: unknown provider 'deepsek'" in message
    assert "deepseek" in message and "qwen" in message


def test_missing_environment_secret_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    path = write(
        tmp_path, "deployments:\n  - {name: q1, model: m, provider: qwen, api_key: env:NO_SUCH_KEY_VAR}\n"
    )
    with pytest.raises(ConfigError) as caught:
        build_app(path, tmp_path)
    assert "deployments[0] (q1): api_key: the environment variable NO_SUCH_KEY_VAR is not set" in str(
        caught.value
    )


def test_generic_provider_needs_a_base_url(tmp_path: Path) -> None:
    path = write(tmp_path, "deployments:\n  - {name: g, model: m, provider: openai-compatible}\n")
    with pytest.raises(ConfigError, match="base_url"):
        build_app(path, tmp_path)


def test_local_false_removes_the_embedded_models(tmp_path: Path) -> None:
    path = write(
        tmp_path, "local: false\ndeployments:\n  - {name: q1, model: qwen-plus, provider: qwen, api_key: k}\n"
    )
    app = build_app(path, tmp_path)
    assert app.router.aliases() == ["qwen-plus"]
    dep = app.router.deployments[0]
    assert dep.price_source.startswith("preset ")  # the preset's CNY table priced it
    assert (str(dep.price_in), str(dep.price_out)) == ("0.8", "2")


def test_server_section_sets_settings_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "server: {max_body_bytes: 1234, port: 9001}\n")
    monkeypatch.setenv("DIZUO_PORT", "9002")
    settings = load_settings(path, data_dir=tmp_path)
    assert settings.max_body_bytes == 1234
    assert settings.port == 9002


def test_unknown_server_setting_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dizuo.yaml: server.max_body: Extra inputs are not permitted"):
        load_settings(write(tmp_path, "server: {max_body: 1}\n"), data_dir=tmp_path)
