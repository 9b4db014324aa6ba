"""The delivery configuration of workspaces: `Channel`, `Template`, `SubscriptionTopic` and
`DeliveryPolicy` documents — validated when saved, cached for the delivery worker, and turned
into channel providers.

A channel document names a provider plugin (`legato.channels.registry`); its `key` is what
journeys and templates name, its kind (email, sms...) is what consent, addresses and template
shapes follow. Two channels are built in and need no document: `inapp` (the in-app inbox) and
`web` (web personalisation placements). A template is checked and prepared when saved (Liquid
syntax errors name line and column); a `web` template names the `placement` it fills and has the
in-app content shape. Never sends anything and never composes SQL.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from legato.channels.registry import ChannelConfig, ProviderContext, ProviderRegistry
from legato.channels.templates import PreparedTemplate, TemplateLimits, prepare
from legato.channels.webhook import secret_key
from legato.domain.consent import SubscriptionTopic
from legato.domain.delivery import CHANNEL_ADDRESS_KINDS, DeliveryPolicy
from legato.domain.durations import parse_duration_ms
from legato.errors import InvalidInput, NotFound
from legato.ports import ChannelProvider, Clock
from legato.runtime import documents
from legato.runtime.documents import ApplyContext, Document, DocumentKind
from legato.store.channels import ChannelStore, StoredDocument

log = structlog.get_logger(__name__)

#: Built-in channels: key → kind. They are served in-process and need no `Channel` document.
BUILTIN_CHANNELS: Mapping[str, str] = {"inapp": "inapp", "web": "web"}
#: Every channel kind Legato knows the address and content shape of.
KNOWN_KINDS = frozenset({*CHANNEL_ADDRESS_KINDS, *BUILTIN_CHANNELS.values()})
#: Template fields read by this layer, not by `channels.templates` (removed before preparing).
TEMPLATE_EXTRAS = ("placement", "expires_after")
#: Channel document fields read by this layer (the provider settings never see them).
CHANNEL_EXTRAS = ("status_secret",)
#: Document kinds `apply` accepts, by their `kind:` value.
DOCUMENT_KINDS = {
    "Channel": "channel",
    "Template": "template",
    "SubscriptionTopic": "topic",
    "Topic": "topic",
    "DeliveryPolicy": "policy",
}

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ChannelEntry:
    """A configured channel: its key, kind, document and version."""

    key: str
    kind: str
    document: Mapping[str, Any]
    version: int

    @property
    def status_secret(self) -> str | None:
        """The secret signing generic provider status webhooks for this channel, if set."""
        value = self.document.get("status_secret")
        return value if isinstance(value, str) else None


#: Per-person links a template may show (signed for each message that uses them).
LINK_VARIABLES = ("unsubscribe_url", "preferences_url")


@dataclass(frozen=True)
class TemplateEntry:
    """A saved template ready to render."""

    key: str
    channel: str
    kind: str
    prepared: PreparedTemplate
    version: int
    placement: str | None = None
    expires_after_ms: int | None = None

    @functools.cached_property
    def mentions(self) -> frozenset[str]:
        """The per-person link variables its text uses (signing them costs: only those are)."""
        text = self.prepared.model_dump_json()
        return frozenset(name for name in LINK_VARIABLES if name in text)


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """Everything delivery reads about one workspace's configuration, at one moment."""

    workspace_id: str
    channels: Mapping[str, ChannelEntry]
    templates: Mapping[str, TemplateEntry]
    topics: Mapping[str, SubscriptionTopic]
    policy: DeliveryPolicy
    loaded_ms: int = 0

    def kind_of(self, channel: str) -> str | None:
        """The kind of a channel key: built-in, configured, or None when unknown."""
        if channel in BUILTIN_CHANNELS:
            return BUILTIN_CHANNELS[channel]
        entry = self.channels.get(channel)
        return None if entry is None else entry.kind

    def template(self, key: str) -> TemplateEntry | None:
        """A saved template, else a built-in one of that key, else None."""
        return self.templates.get(key) or builtin_template(key)

    def channel_of_kind(self, kind: str) -> str | None:
        """The key of the channel serving a kind: the one named like it, else the first."""
        if kind in BUILTIN_CHANNELS:
            return kind
        keys = sorted(key for key, entry in self.channels.items() if entry.kind == kind)
        if kind in keys:
            return kind
        return keys[0] if keys else None


#: Key of the built-in double opt-in confirmation email (a saved template of that key wins).
CONFIRMATION_TEMPLATE = "double_opt_in"

_CONFIRMATION_SOURCE = {
    "key": CONFIRMATION_TEMPLATE,
    "channel": "email",
    "category": "transactional",
    "subject": "Please confirm your subscription",
    "html": (
        "<html><body><p>Hello,</p><p>Please confirm that you want to receive "
        "{{ data.topic_name | default: 'our emails' }} by clicking the link below.</p>"
        '<p><a href="{{ data.confirm_url }}">Yes, subscribe me</a></p>'
        "<p>If you did not ask for this, ignore this email: nothing will be sent.</p>"
        "</body></html>"
    ),
}


@functools.cache
def builtin_template(key: str) -> TemplateEntry | None:
    """A template Legato ships (the double opt-in confirmation), or None."""
    if key != CONFIRMATION_TEMPLATE:
        return None
    prepared = prepare(_CONFIRMATION_SOURCE)
    return TemplateEntry(key=key, channel="email", kind="email", prepared=prepared, version=0)


def validated(model: type[Model], document: Mapping[str, Any], what: str) -> Model:
    """`document` as `model`; InvalidInput naming the first wrong path otherwise."""
    try:
        return model.model_validate(dict(document))
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"]) or what
        raise InvalidInput(f"{what} {path}: {first['msg']}", path=path) from exc


def _document(document: Any, kind: str) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        raise InvalidInput(f"a {kind} document must be a mapping", path="$")
    body = dict(document)
    stated = body.get("kind")
    if stated is not None and DOCUMENT_KINDS.get(str(stated)) != kind:
        raise InvalidInput(f"expected kind {kind!r}, got {stated!r}", path="kind")
    return body


def _topics(declared: Mapping[str, frozenset[str]] | None) -> frozenset[str]:
    found = declared or {}
    return found.get("SubscriptionTopic", frozenset()) | found.get("Topic", frozenset())


def _shape(kind: str) -> str:
    # Web placements carry the in-app content shape (title, body, url, image, data).
    return "inapp" if kind == "web" else kind


class DeliveryConfig:
    """Saves and serves the delivery documents of workspaces, and their channel providers."""

    def __init__(
        self,
        store: ChannelStore,
        registry: ProviderRegistry,
        context: ProviderContext,
        clock: Clock,
        *,
        builtins: Mapping[str, ChannelProvider] | None = None,
        limits: TemplateLimits | None = None,
        ttl_ms: int = 1000,
    ) -> None:
        self.store = store
        self.registry = registry
        self.context = context
        self.clock = clock
        self.builtins = dict(builtins or {})
        self.limits = limits or TemplateLimits()
        self.ttl_ms = ttl_ms
        self._configs: dict[str, WorkspaceConfig] = {}
        self._providers: dict[tuple[str, str], tuple[int, ChannelProvider]] = {}
        self._retired: list[ChannelProvider] = []

    # -- saving documents -----------------------------------------------------------------------

    async def apply(
        self,
        workspace_id: str,
        document: Any,
        *,
        declared: Mapping[str, frozenset[str]] | None = None,
    ) -> dict[str, Any]:
        """Save a document of any delivery kind (`kind:` says which); returns a summary.
        Topics in `declared` (the same file's documents) count as existing."""
        if not isinstance(document, Mapping) or document.get("kind") not in DOCUMENT_KINDS:
            known = ", ".join(DOCUMENT_KINDS)
            raise InvalidInput(f"a delivery document needs `kind:` one of {known}", path="kind")
        kind = DOCUMENT_KINDS[str(document["kind"])]
        if kind == "channel":
            return await self.save_channel(workspace_id, document)
        if kind == "template":
            return await self.save_template(workspace_id, document, topics=_topics(declared))
        if kind == "topic":
            return await self.save_topic(workspace_id, document)
        return await self.save_policy(workspace_id, document)

    async def check(
        self,
        workspace_id: str,
        document: Any,
        *,
        declared: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """Validate a document of any delivery kind without saving it; `declared` names the
        keys other documents of the same file declare (by document kind), which count as
        existing."""
        if not isinstance(document, Mapping) or document.get("kind") not in DOCUMENT_KINDS:
            known = ", ".join(DOCUMENT_KINDS)
            raise InvalidInput(f"a delivery document needs `kind:` one of {known}", path="kind")
        kind = DOCUMENT_KINDS[str(document["kind"])]
        body = _document(document, kind)
        if kind == "channel":
            await self._check_channel(body)
        elif kind == "template":
            await self.prepare_template(
                workspace_id,
                body,
                channels=(declared or {}).get("Channel", frozenset()),
                topics=_topics(declared),
            )
        elif kind == "topic":
            self._check_topic(body)
        else:
            validated(
                DeliveryPolicy,
                {k: v for k, v in body.items() if k not in {"kind", "key"}},
                "policy",
            )

    async def _check_channel(self, body: dict[str, Any]) -> tuple[ChannelConfig, str]:
        secret = body.get("status_secret")
        if secret is not None:
            if not isinstance(secret, str):
                raise InvalidInput("status_secret must be a whsec_ secret", path="status_secret")
            try:
                secret_key(secret)
            except InvalidInput as exc:
                raise InvalidInput(exc.message, path="status_secret") from exc
        config_doc = {k: v for k, v in body.items() if k not in CHANNEL_EXTRAS}
        config = validated(ChannelConfig, config_doc, "channel")
        if config.key in BUILTIN_CHANNELS:
            raise InvalidInput(
                f"channel {config.key!r} is built in and needs no document", path="key"
            )
        provider = self.registry.build_channel(config, self.context)
        kind = provider.channel
        with contextlib.suppress(Exception):
            await provider.aclose()
        return config, kind

    async def save_channel(self, workspace_id: str, document: Any) -> dict[str, Any]:
        """Validate a `Channel` document by building its providers, then save it."""
        body = _document(document, "channel")
        config, kind = await self._check_channel(body)
        version = await self.store.save(
            "channel",
            workspace_id,
            config.key,
            source=body,
            channel=kind,
            now_ms=self.clock.now_ms(),
        )
        self.invalidate(workspace_id)
        return {"kind": "Channel", "key": config.key, "channel": kind, "version": version}

    async def save_template(
        self, workspace_id: str, document: Any, *, topics: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Check and prepare a `Template` document (422 with line and column on Liquid syntax
        errors), then save it. `topics` may name topics about to be saved."""
        body = _document(document, "template")
        entry = await self.prepare_template(workspace_id, body, topics=topics)
        assert entry is not None
        version = await self.store.save(
            "template",
            workspace_id,
            entry.key,
            source=body,
            channel=entry.channel,
            now_ms=self.clock.now_ms(),
            prepared=entry.prepared.model_dump(mode="json"),
            category=entry.prepared.category.value,
            topic=entry.prepared.topic,
        )
        self.invalidate(workspace_id)
        return {"kind": "Template", "key": entry.key, "channel": entry.channel, "version": version}

    async def prepare_template(
        self,
        workspace_id: str,
        body: dict[str, Any],
        *,
        channels: frozenset[str] = frozenset(),
        topics: frozenset[str] = frozenset(),
    ) -> TemplateEntry | None:
        """The template ready to save; None when its channel is only declared in the same
        file (its kind, hence the content shape, is known once that channel is saved)."""
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel:
            raise InvalidInput("a template needs `channel`", path="channel")
        config = await self.snapshot(workspace_id, fresh=True)
        kind = config.kind_of(channel) or (channel if channel in KNOWN_KINDS else None)
        if kind is None and channel in channels:
            return None
        if kind is None:
            raise InvalidInput(
                f"unknown channel {channel!r}: apply its Channel document first", path="channel"
            )
        placement = body.get("placement")
        if kind == "web":
            if not isinstance(placement, str) or not placement:
                raise InvalidInput("a web template needs `placement`", path="placement")
        elif placement is not None:
            raise InvalidInput("only web templates have a placement", path="placement")
        expires_after_ms = None
        expires_after = body.get("expires_after")
        if expires_after is not None:
            if kind not in {"inapp", "web"}:
                raise InvalidInput("only inapp and web templates expire", path="expires_after")
            if not isinstance(expires_after, str):
                raise InvalidInput("expires_after is a duration such as 7d", path="expires_after")
            expires_after_ms = parse_duration_ms(expires_after)
        source = {k: v for k, v in body.items() if k not in TEMPLATE_EXTRAS}
        source["channel"] = _shape(kind)
        prepared = prepare(source, self.limits)
        if prepared.topic is not None and prepared.topic not in topics:
            topic = config.topics.get(prepared.topic)
            if topic is None:
                raise InvalidInput(
                    f"unknown subscription topic {prepared.topic!r}: apply it first", path="topic"
                )
            if topic.channel != kind:
                raise InvalidInput(
                    f"topic {topic.key!r} belongs to channel {topic.channel!r}, not {kind!r}",
                    path="topic",
                )
        return TemplateEntry(
            key=prepared.key,
            channel=channel,
            kind=kind,
            prepared=prepared,
            version=0,
            placement=placement if isinstance(placement, str) else None,
            expires_after_ms=expires_after_ms,
        )

    @staticmethod
    def _check_topic(body: dict[str, Any]) -> SubscriptionTopic:
        topic = validated(
            SubscriptionTopic, {k: v for k, v in body.items() if k != "kind"}, "topic"
        )
        if topic.channel not in KNOWN_KINDS:
            known = ", ".join(sorted(KNOWN_KINDS))
            raise InvalidInput(
                f"topic channel must be a channel kind ({known}), not {topic.channel!r}",
                path="channel",
            )
        return topic

    async def save_topic(self, workspace_id: str, document: Any) -> dict[str, Any]:
        """Validate and save a `SubscriptionTopic` document."""
        body = _document(document, "topic")
        topic = self._check_topic(body)
        version = await self.store.save(
            "topic",
            workspace_id,
            topic.key,
            source=body,
            channel=topic.channel,
            now_ms=self.clock.now_ms(),
        )
        self.invalidate(workspace_id)
        return {"kind": "SubscriptionTopic", "key": topic.key, "version": version}

    async def save_policy(self, workspace_id: str, document: Any) -> dict[str, Any]:
        """Validate and save the workspace's `DeliveryPolicy` document."""
        body = _document(document, "policy")
        body.pop("key", None)
        validated(DeliveryPolicy, {k: v for k, v in body.items() if k != "kind"}, "policy")
        version = await self.store.save_policy(workspace_id, body, self.clock.now_ms())
        self.invalidate(workspace_id)
        return {"kind": "DeliveryPolicy", "version": version}

    async def delete(self, kind: str, workspace_id: str, key: str) -> None:
        """Delete a channel, template or topic document."""
        await self.store.delete(kind, workspace_id, key)
        self.invalidate(workspace_id)

    async def document(self, kind: str, workspace_id: str, key: str) -> dict[str, Any]:
        """A saved document as written, with its version."""
        if kind == "policy":
            stored = await self.store.policy(workspace_id)
            if stored is None:
                return {"kind": "DeliveryPolicy", "version": 0, **DeliveryPolicy().model_dump()}
        else:
            stored = await self.store.get(kind, workspace_id, key)
        return {**stored.source, "version": stored.version, "updated_ms": stored.updated_ms}

    async def documents(self, kind: str, workspace_id: str) -> list[dict[str, Any]]:
        """Every saved document of a kind, as written, with versions."""
        return [
            {**stored.source, "version": stored.version, "updated_ms": stored.updated_ms}
            for stored in await self.store.list(kind, workspace_id)
        ]

    # -- serving the worker ---------------------------------------------------------------------

    def invalidate(self, workspace_id: str) -> None:
        """Forget the cached configuration of a workspace (it changed)."""
        self._configs.pop(workspace_id, None)

    async def snapshot(self, workspace_id: str, *, fresh: bool = False) -> WorkspaceConfig:
        """The workspace's configuration, read at most once per `ttl_ms` (other processes'
        changes show within that delay; this process's at once)."""
        now_ms = self.clock.now_ms()
        cached = self._configs.get(workspace_id)
        if cached is not None and not fresh and now_ms - cached.loaded_ms < self.ttl_ms:
            return cached
        channels = {
            doc.key: ChannelEntry(doc.key, doc.channel, doc.source, doc.version)
            for doc in await self.store.list("channel", workspace_id)
        }
        topics: dict[str, SubscriptionTopic] = {}
        for doc in await self.store.list("topic", workspace_id):
            topics[doc.key] = SubscriptionTopic.model_validate(
                {k: v for k, v in doc.source.items() if k != "kind"}
            )
        templates = {
            doc.key: self._template_entry(doc, channels)
            for doc in await self.store.list("template", workspace_id)
        }
        stored_policy = await self.store.policy(workspace_id)
        policy = (
            DeliveryPolicy()
            if stored_policy is None
            else DeliveryPolicy.model_validate(
                {k: v for k, v in stored_policy.source.items() if k != "kind"}
            )
        )
        config = WorkspaceConfig(workspace_id, channels, templates, topics, policy, now_ms)
        self._configs[workspace_id] = config
        return config

    @staticmethod
    def _template_entry(doc: StoredDocument, channels: Mapping[str, ChannelEntry]) -> TemplateEntry:
        assert doc.prepared is not None
        prepared = PreparedTemplate.model_validate(doc.prepared)
        entry = channels.get(doc.channel)
        kind = BUILTIN_CHANNELS.get(doc.channel) or (entry.kind if entry else doc.channel)
        placement = doc.source.get("placement")
        expires = doc.source.get("expires_after")
        return TemplateEntry(
            key=doc.key,
            channel=doc.channel,
            kind=kind,
            prepared=prepared,
            version=doc.version,
            placement=placement if isinstance(placement, str) else None,
            expires_after_ms=parse_duration_ms(expires) if isinstance(expires, str) else None,
        )

    async def provider(self, config: WorkspaceConfig, channel: str) -> ChannelProvider | None:
        """The provider serving a channel key (built from its document, cached per version),
        or None when the channel is not configured."""
        builtin = self.builtins.get(channel)
        if builtin is not None:
            return builtin
        entry = config.channels.get(channel)
        if entry is None:
            return None
        cache_key = (config.workspace_id, channel)
        cached = self._providers.get(cache_key)
        if cached is not None and cached[0] == entry.version:
            return cached[1]
        document = {k: v for k, v in entry.document.items() if k not in CHANNEL_EXTRAS}
        provider = self.registry.build_channel(document, self.context)
        if cached is not None:
            # Sends in flight may still hold the old one: close it at shutdown, not now.
            self._retired.append(cached[1])
        self._providers[cache_key] = (entry.version, provider)
        return provider

    async def known(self, workspace_id: str) -> dict[str, set[str]]:
        """Template, channel and topic keys of a workspace (journey validation reads them)."""
        config = await self.snapshot(workspace_id, fresh=True)
        return {
            "templates": set(config.templates),
            "channels": set(config.channels) | set(BUILTIN_CHANNELS),
            "topics": set(config.topics),
        }

    async def template(self, workspace_id: str, key: str) -> TemplateEntry:
        """A saved template; NotFound naming it otherwise."""
        config = await self.snapshot(workspace_id)
        entry = config.templates.get(key)
        if entry is None:
            raise NotFound(f"no template {key!r} in this workspace", field="template")
        return entry

    async def aclose(self) -> None:
        """Close every provider built (built-in ones belong to their owner)."""
        providers = [p for _, p in self._providers.values()] + self._retired
        self._providers.clear()
        self._retired.clear()
        for provider in providers:
            try:
                await provider.aclose()
            except Exception:
                log.exception("closing a channel provider failed", provider=provider.name)


# -- `legato apply`: Channel, Template, SubscriptionTopic (or Topic) and DeliveryPolicy -------


async def _check_document(ctx: ApplyContext, doc: Document) -> None:
    config: DeliveryConfig = ctx.services.delivery_config
    await config.check(ctx.workspace_id, doc.body, declared=ctx.declared)


async def _apply_document(ctx: ApplyContext, doc: Document, _checked: None) -> str:
    config: DeliveryConfig = ctx.services.delivery_config
    saved = await config.apply(ctx.workspace_id, doc.body, declared=ctx.declared)
    return "saved" if saved["version"] == 1 else f"updated (v{saved['version']})"


for _kind in DOCUMENT_KINDS:
    documents.register(DocumentKind(_kind, check=_check_document, apply=_apply_document))
