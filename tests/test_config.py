"""Config: defaults from config/default.yaml, then a file, then the environment."""

from fhir_bridge.config import load_config


def test_defaults_are_sqlite_and_loopback():
    config = load_config(environ={})
    assert config["database_url"].startswith("sqlite:")
    assert config["server"]["host"] == "127.0.0.1"


def test_environment_overrides_files_and_nested_keys_use_double_underscores(tmp_path):
    extra = tmp_path / "site.yaml"
    extra.write_text("database_url: sqlite:///site.db\nserver: {port: 9000}\n")
    config = load_config(environ={"FHIR_BRIDGE_CONFIG": str(extra),
                                  "FHIR_BRIDGE_SERVER__PORT": "9100",
                                  "FHIR_BRIDGE_LOG_LEVEL": "DEBUG"})
    assert config["database_url"] == "sqlite:///site.db"
    assert config["server"] == {"host": "127.0.0.1", "port": 9100}
    assert config["log_level"] == "DEBUG"


def test_explicit_overrides_win():
    config = load_config({"database_url": "sqlite:///x.db"},
                         environ={"FHIR_BRIDGE_DATABASE_URL": "postgresql://elsewhere"})
    assert config["database_url"] == "sqlite:///x.db"
