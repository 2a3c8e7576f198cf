"""Where a pipeline runs and how people get in: container image, user, ports, volumes, Jupyter, SSH."""

from __future__ import annotations

import ipaddress
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from .types import (
    _ENV_NAME_RE,
    _IMAGE_RE,
    _SHM_RE,
    _SSH_USER_RE,
    _USER_RE,
    Text,
    _full,
    _Model,
    split_image,
)


class Port(_Model):
    """A published port: host port -> container port."""

    host: int = Field(ge=1, le=65535, description="Port on the host machine.")
    container: int = Field(ge=1, le=65535, description="Port inside the container.")


class Volume(_Model):
    """A bind mount from the host into the container."""

    host: Text = Field(min_length=1, description="Host path (relative paths are relative to the pipeline file).")
    container: Text = Field(description="Absolute path inside the container.")
    read_only: bool = Field(False, description="Mount read-only (good for datasets).")

    @field_validator("container")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"must be an absolute container path, got {v!r}")
        return str(PurePosixPath(v))


class Environment(_Model):
    """Where training runs: the container image and how it is started."""

    image: Text = Field(description="Container image with an explicit version tag, e.g. 'pytorch-cuda:v2.6-cuda11.8'.")
    user: Annotated[Text, _full(_USER_RE, "'user', 'uid', 'user:group' or 'uid:gid'")] | None = Field(
        None, description="User the container runs as ('1000:1000', 'dev'); None = image default."
    )
    ports: list[Port] = Field(default_factory=list, description="Published ports.")
    volumes: list[Volume] = Field(default_factory=list, description="Bind mounts (data, checkpoints, code).")
    env: list[Text] = Field(
        default_factory=list,
        description="Names of environment variables passed through. Names only: values never enter the spec.",
    )
    shm_size: Text = Field(
        "8g", description="Shared memory size (docker --shm-size), e.g. '8g'. DataLoader workers need it."
    )
    workdir: Text = Field("/workspace", description="Working directory inside the container.")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not _IMAGE_RE.fullmatch(v):
            raise ValueError(f"not a valid image reference: {v!r} (expected 'name:tag')")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _ENV_NAME_RE.fullmatch(name):
                raise ValueError(
                    "environment variables are given by NAME only (letters, digits, '_'); "
                    "values such as 'NAME=value' are not allowed in the spec"
                )
        return v

    @field_validator("shm_size")
    @classmethod
    def _shm(cls, v: str) -> str:
        if not _SHM_RE.fullmatch(v):
            raise ValueError(f"must look like '8g', '512m' or a byte count, got {v!r}")
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"must be an absolute container path, got {v!r}")
        return v

    @model_validator(mode="after")
    def _unique_mounts(self) -> Environment:
        seen: dict[str, int] = {}
        for i, vol in enumerate(self.volumes):
            if vol.container in seen:
                raise ValueError(
                    f"volumes[{i}].container {vol.container!r} is already mounted by volumes[{seen[vol.container]}]; "
                    "each container path may be mounted once"
                )
            seen[vol.container] = i
        ports: dict[int, int] = {}
        for i, port in enumerate(self.ports):
            if port.host in ports:
                raise ValueError(f"ports[{i}].host {port.host} is already published by ports[{ports[port.host]}]")
            ports[port.host] = i
        return self

    @property
    def image_tag(self) -> str | None:
        return split_image(self.image)[1]


class Jupyter(_Model):
    """A Jupyter server inside the container."""

    port: int = Field(8888, ge=1, le=65535, description="Port the server listens on inside the container.")
    bind: Text = Field("127.0.0.1", description="Address the server binds to ('0.0.0.0' = every interface).")
    token_env: Text | None = Field(
        None, description="Name of the environment variable holding the access token; None = no token (unsafe)."
    )

    @field_validator("bind")
    @classmethod
    def _ip(cls, v: str) -> str:
        ipaddress.ip_address(v)
        return v

    @field_validator("token_env")
    @classmethod
    def _token_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME_RE.fullmatch(v):
            raise ValueError("must be an environment variable NAME, never the token itself")
        return v


class SSH(_Model):
    """An SSH daemon inside the container (for terminals and remote IDEs)."""

    port: int = Field(22, ge=1, le=65535, description="Port sshd listens on inside the container.")
    user: Annotated[Text, _full(_SSH_USER_RE, "a login name (letters, digits, '_', '.', '-')")] = Field(
        "dev", min_length=1, description="Login user."
    )
    auth: Literal["key", "password"] = Field("key", description="Authentication method.")


class Access(_Model):
    """How people reach the running container."""

    jupyter: Jupyter | None = Field(None, description="Jupyter entry point (browser over HTTP); None = none.")
    ssh: SSH | None = Field(None, description="SSH entry point (terminal); None = none.")
