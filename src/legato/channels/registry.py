"""Channel provider plugins: discovery, named configurations, and building them.

Providers register under the `legato.channels` entry-point group (pyproject
`[project.entry-points."legato.channels"]`); the name is the `provider:` users write, the target
is a class with a `channel` kind and a `from_settings(name, settings, context)` classmethod.
A channel may list several named provider configurations; more than one is wrapped in a
`FailoverChannel`. Never sends anything itself and never reads settings from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from legato.channels.failover import FailoverChannel
from legato.channels.outbound import OutboundClient
from legato.channels.ratelimit import RateLimitedChannel
from legato.errors import InvalidInput
from legato.ports import ChannelProvider, Clock

ENTRY_POINT_GROUP = "legato.channels"

_KEY = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What the composition root hands every provider it builds (shared, not owned)."""

    http: OutboundClient
    clock: Clock


class ProviderFactory(Protocol):
    """What an entry point names: a provider class, or anything shaped like one."""

    channel: str

    def from_settings(
        self, name: str, settings: Mapping[str, Any], context: ProviderContext
    ) -> ChannelProvider:
        """A provider built from one named configuration; InvalidInput on bad settings."""
        ...


class ProviderConfig(BaseModel):
    """One named provider configuration of a channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_KEY)
    provider: str = Field(pattern=_KEY)
    settings: dict[str, Any] = Field(default_factory=dict)
    # Sends a second this provider accepts (its account's limit); None = unlimited.
    rate_per_second: float | None = Field(default=None, gt=0)
    burst: float = Field(default=1.0, ge=1)


class ChannelConfig(BaseModel):
    """A `kind: Channel` document: one provider (`provider` + `settings`) or an ordered
    `providers` list tried in turn when one fails with a retryable error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str | None = None
    key: str = Field(pattern=_KEY)
    provider: str | None = Field(default=None, pattern=_KEY)
    settings: dict[str, Any] = Field(default_factory=dict)
    rate_per_second: float | None = Field(default=None, gt=0)
    burst: float = Field(default=1.0, ge=1)
    providers: tuple[ProviderConfig, ...] = ()

    @model_validator(mode="after")
    def _one_form(self) -> ChannelConfig:
        if self.provider is None and not self.providers:
            raise ValueError("a channel needs `provider` or `providers`")
        if self.provider is not None and self.providers:
            raise ValueError("give either `provider` (with `settings`) or `providers`, not both")
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError("provider names must be unique within a channel")
        return self

    def configs(self) -> tuple[ProviderConfig, ...]:
        """The provider configurations in failover order."""
        if self.providers:
            return self.providers
        assert self.provider is not None
        return (
            ProviderConfig(
                name=self.key,
                provider=self.provider,
                settings=self.settings,
                rate_per_second=self.rate_per_second,
                burst=self.burst,
            ),
        )


SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


def parse_settings(model: type[SettingsModel], settings: Mapping[str, Any]) -> SettingsModel:
    """Provider settings validated by `model`; InvalidInput names the first wrong field."""
    try:
        return model.model_validate(dict(settings))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        # A model-level check (several fields together) has no location: the settings.
        path = f"settings.{field}" if field else "settings"
        raise InvalidInput(f"{path}: {first['msg']}", path=path) from exc


class ProviderRegistry:
    """Provider kinds by name, loaded lazily from entry points or given directly (tests)."""

    def __init__(
        self,
        factories: Mapping[str, ProviderFactory] | None = None,
        entry_points: Mapping[str, EntryPoint] | None = None,
    ) -> None:
        self._factories: dict[str, ProviderFactory] = dict(factories or {})
        self._entry_points = dict(entry_points or {})

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> ProviderRegistry:
        """Every provider installed under `group`."""
        return cls(entry_points={ep.name: ep for ep in entry_points(group=group)})

    def kinds(self) -> list[str]:
        """The provider names users may write."""
        return sorted({*self._factories, *self._entry_points})

    def factory(self, provider: str) -> ProviderFactory:
        """The factory for `provider`; InvalidInput listing the known ones if unknown."""
        found = self._factories.get(provider)
        if found is not None:
            return found
        entry = self._entry_points.get(provider)
        if entry is None:
            known = ", ".join(self.kinds()) or "none installed"
            raise InvalidInput(f"unknown provider {provider!r} (known: {known})", path="provider")
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken plugin must not take the process down
            raise InvalidInput(
                f"provider plugin {provider!r} failed to load: {exc!r}", path="provider"
            ) from exc
        if not isinstance(getattr(loaded, "channel", None), str) or not callable(
            getattr(loaded, "from_settings", None)
        ):
            raise InvalidInput(
                f"provider plugin {provider!r} lacks `channel` or `from_settings`",
                path="provider",
            )
        self._factories[provider] = loaded
        return self._factories[provider]

    def build(self, config: ProviderConfig, context: ProviderContext) -> ChannelProvider:
        """One provider from its named configuration (rate-limited if it says so)."""
        provider = self.factory(config.provider).from_settings(
            config.name, config.settings, context
        )
        if config.rate_per_second is None:
            return provider
        return RateLimitedChannel(
            provider, rate=config.rate_per_second, burst=config.burst, clock=context.clock
        )

    def build_channel(
        self, config: ChannelConfig | Mapping[str, Any], context: ProviderContext
    ) -> ChannelProvider:
        """The provider serving a channel document: the only one, or a `FailoverChannel`.

        Errors name their place in the document (`providers[1].settings.host`).
        """
        if not isinstance(config, ChannelConfig):
            try:
                config = ChannelConfig.model_validate(dict(config))
            except ValidationError as exc:
                first = exc.errors()[0]
                path = ".".join(str(part) for part in first["loc"]) or "channel"
                raise InvalidInput(f"{path}: {first['msg']}", path=path) from exc
        built: list[ChannelProvider] = []
        for index, provider_config in enumerate(config.configs()):
            prefix = f"providers[{index}]." if config.providers else ""
            try:
                built.append(self.build(provider_config, context))
            except InvalidInput as exc:
                path = prefix + str(exc.details.get("path", "settings"))
                raise InvalidInput(f"{prefix}{exc.message}", path=path) from exc
        kinds = {provider.channel for provider in built}
        if len(kinds) > 1:
            raise InvalidInput(
                f"channel {config.key!r} mixes provider kinds {sorted(kinds)}", path="providers"
            )
        if len(built) == 1:
            return built[0]
        return FailoverChannel(built, name=config.key)
