"""Message templates: Liquid sandboxed with resource limits, MJML compiled when saved, raw
HTML, a text part derived from the HTML, and per-locale variants.

Two steps. `prepare(document)` runs when a template is saved: it checks the fields the channel
needs, compiles MJML to HTML (mjml-python), merges each locale variant over the default, and
parses every Liquid field — a syntax error is `InvalidInput` naming the field, line and column
(the API answers 422). `TemplateRenderer.render(prepared, context, locale=...)` runs at send
time; any failure there is a `TemplateRenderError`, which the delivery worker turns into a
skip with reason `render_failed`. Liquid here has no loader (no include/render of files), HTML
fields auto-escape what they interpolate, and loops, output size, local namespace size and
context depth are capped. Never touches the network or the file system.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar, Literal

import mjml
from liquid import BoundTemplate, Environment, RenderContext, Undefined
from liquid.exceptions import LiquidError
from liquid.token import Token
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from legato.domain.delivery import (
    Content,
    EmailContent,
    InAppContent,
    MessageCategory,
    PushContent,
    SmsContent,
    WebhookContent,
    WhatsAppContent,
)
from legato.errors import InvalidInput

_KEY = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_LOCALE = r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$"

# ---------------------------------------------------------------------------------------------
# Documents


class WhatsAppTemplateSpec(BaseModel):
    """A pre-approved WhatsApp template; string leaves of `components` may use Liquid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=512)
    language: str = "en_US"
    components: tuple[dict[str, Any], ...] = ()


class TemplateVariant(BaseModel):
    """The content fields of a template (one locale); every string may use Liquid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str | None = None
    from_address: str | None = None
    reply_to: str | None = None
    mjml: str | None = None
    html: str | None = None
    text: str | None = None
    title: str | None = None
    body: str | None = None
    url: str | None = None
    icon: str | None = None
    image: str | None = None
    data: dict[str, str] | None = None
    whatsapp_template: WhatsAppTemplateSpec | None = None
    payload: Any = None
    event_type: str | None = None


class TemplateDocument(TemplateVariant):
    """A template as users write it: the default variant, plus `locales` overriding fields."""

    kind: Literal["Template"] | None = None
    key: str = Field(pattern=_KEY)
    channel: str = Field(pattern=_KEY)
    category: MessageCategory = MessageCategory.MARKETING
    topic: str | None = Field(default=None, pattern=_KEY)
    locales: dict[str, TemplateVariant] = Field(default_factory=dict)


class PreparedTemplate(BaseModel):
    """A saved template: MJML compiled, locales merged over the default (key "" is the
    default), every Liquid field known to parse. Stored as JSON, rendered at send time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    channel: str
    category: MessageCategory
    topic: str | None
    variants: dict[str, TemplateVariant]


_CONTENT_FIELDS = tuple(TemplateVariant.model_fields)
_HTML_FIELDS = frozenset({"html"})
_REQUIRED: Mapping[str, tuple[tuple[str, ...], ...]] = {
    # Each inner tuple: at least one of these fields must be set.
    "email": (("subject",), ("html", "text")),
    "sms": (("body",),),
    "whatsapp": (("body", "whatsapp_template"),),
    "push": (("title",), ("body",)),
    "webpush": (("title",), ("body",)),
    "webhook": (("payload",),),
    "inapp": (("title", "body"),),
}

# ---------------------------------------------------------------------------------------------
# Limits and the sandboxed environment


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """Resource limits of one render (python-liquid's Environment limits) and of the source."""

    loop_iterations: int = 10_000
    output_bytes: int = 1_000_000
    local_namespace_bytes: int = 256 * 1024
    context_depth: int = 30
    block_nesting: int = 30
    source_chars: int = 512 * 1024


class _Sandbox(Environment):
    """Liquid environment whose errors always carry a position when one can be found."""

    def error(
        self,
        exc: type[LiquidError] | LiquidError,
        msg: str | None = None,
        token: Token | None = None,
    ) -> None:
        # python-liquid leaves a synthetic, position-less token on some expression errors; the
        # markup token being parsed is a better place to point at.
        if (
            isinstance(exc, LiquidError)
            and token is not None
            and token.start_index >= 0
            and (exc.token is None or exc.token.start_index < 0)
        ):
            exc.token = token
        super().error(exc, msg, token)


def _environment(limits: TemplateLimits, *, autoescape: bool) -> Environment:
    sandbox: type[Environment] = type(
        "LimitedSandbox",
        (_Sandbox,),
        {
            "loop_iteration_limit": limits.loop_iterations,
            "output_stream_limit": limits.output_bytes,
            "local_namespace_limit": limits.local_namespace_bytes,
            "context_depth_limit": limits.context_depth,
            "block_nesting_limit": limits.block_nesting,
        },
    )
    env = sandbox(autoescape=autoescape, undefined=Undefined, strict_filters=True)
    # No partials: templates are self-contained documents, and a loader would be a way out
    # of the sandbox. Without the tags, using them is a syntax error with a position.
    for tag in ("include", "render"):
        env.tags.pop(tag, None)
    return env


@dataclass(frozen=True, slots=True)
class _Position:
    line: int
    column: int


def _position(exc: LiquidError, source: str) -> _Position | None:
    context = exc.context()
    if context is not None:
        return _Position(context[0], context[1] + 1)
    match = re.match(r"expected tag end(\w+)", str(exc.message))
    if match:
        opened = _unclosed_tag(source, match.group(1))
        if opened is not None:
            return _position_of(source, opened)
    return None


def _unclosed_tag(source: str, name: str) -> int | None:
    opened: list[int] = []
    tag = re.compile(r"\{%-?\s*(end)?" + re.escape(name) + r"\b")
    for match in tag.finditer(source):
        if match.group(1):
            if opened:
                opened.pop()
        else:
            opened.append(match.start())
    return opened[-1] if opened else None


def _position_of(source: str, index: int) -> _Position:
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return _Position(line, column)


class TemplateRenderError(InvalidInput):
    """A template failed at send time (limit reached, filter error...): skip the message."""


# ---------------------------------------------------------------------------------------------
# Locales


def normalize_locale(tag: str) -> str:
    """A locale tag compared case-insensitively with `-` separators: "fr_CA" → "fr-ca"."""
    return tag.strip().replace("_", "-").lower()


def choose_locale(available: Iterable[str], requested: str | None) -> str:
    """The variant key for a profile locale: exact tag, then shorter prefixes (`fr-CA` → `fr`),
    then "" (the default)."""
    keys = {normalize_locale(key): key for key in available if key}
    if not requested:
        return ""
    parts = normalize_locale(requested).split("-")
    while parts:
        found = keys.get("-".join(parts))
        if found is not None:
            return found
        parts.pop()
    return ""


# ---------------------------------------------------------------------------------------------
# Saving


def prepare(
    document: TemplateDocument | Mapping[str, Any], limits: TemplateLimits | None = None
) -> PreparedTemplate:
    """Validate a template as saved: fields the channel needs, MJML compiled, Liquid parsed.

    `InvalidInput` names the path (`locales.fr.subject`) and, for Liquid, line and column.
    """
    doc = _document(document)
    limits = limits or TemplateLimits()
    checker = _Checker(limits)
    defaults = TemplateVariant.model_validate(doc.model_dump(include=set(_CONTENT_FIELDS)))
    variants: dict[str, TemplateVariant] = {"": checker.variant(doc.channel, defaults, "")}
    seen: dict[str, str] = {}
    for locale, override in doc.locales.items():
        path = f"locales.{locale}"
        if not re.fullmatch(_LOCALE, locale):
            raise InvalidInput(f"not a locale tag: {locale!r} (write e.g. fr or fr-CA)", path=path)
        norm = normalize_locale(locale)
        if norm in seen:
            raise InvalidInput(f"locale {locale!r} repeats {seen[norm]!r}", path=path)
        seen[norm] = locale
        set_fields = override.model_dump(exclude_unset=True)
        if "mjml" in set_fields and "html" not in set_fields:
            set_fields["html"] = None
        if "html" in set_fields and "mjml" not in set_fields:
            set_fields["mjml"] = None
        merged = defaults.model_copy(update=set_fields)
        variants[locale] = checker.variant(doc.channel, merged, path + ".")
    return PreparedTemplate(
        key=doc.key, channel=doc.channel, category=doc.category, topic=doc.topic, variants=variants
    )


def _document(document: TemplateDocument | Mapping[str, Any]) -> TemplateDocument:
    if isinstance(document, TemplateDocument):
        return document
    try:
        return TemplateDocument.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{path}: {first['msg']}", path=path) from exc


class _Checker:
    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.plain = _environment(limits, autoescape=False)
        self.html = _environment(limits, autoescape=True)

    def variant(self, channel: str, variant: TemplateVariant, prefix: str) -> TemplateVariant:
        if variant.mjml is not None and variant.html is not None:
            raise InvalidInput("give either mjml or html, not both", path=prefix + "mjml")
        if variant.mjml is not None:
            self._parse(self.plain, variant.mjml, prefix + "mjml")
            variant = variant.model_copy(update={"html": _compile_mjml(variant.mjml, prefix)})
        for group in _REQUIRED.get(channel, ()):
            if all(getattr(variant, name) in (None, "") for name in group):
                wanted = " or ".join(group)
                raise InvalidInput(f"a {channel} template needs {wanted}", path=prefix + group[0])
        for path, source in _liquid_fields(variant, prefix):
            env = self.html if path.endswith("html") else self.plain
            template = self._parse(env, source, path)
            used = template.analyze().filters
            unknown = sorted(set(used) - set(env.filters))
            if unknown:
                at = _position_of(source, used[unknown[0]][0].index)
                raise InvalidInput(
                    f"unknown Liquid filter {unknown[0]!r} in {path}"
                    f" at line {at.line}, column {at.column}",
                    path=path,
                    line=at.line,
                    column=at.column,
                )
        return variant

    def _parse(self, env: Environment, source: str, path: str) -> BoundTemplate:
        if len(source) > self.limits.source_chars:
            raise InvalidInput(
                f"template field longer than {self.limits.source_chars} characters", path=path
            )
        try:
            return env.from_string(source)
        except LiquidError as exc:
            position = _position(exc, source)
            where = f" at line {position.line}, column {position.column}" if position else ""
            details: dict[str, Any] = {"path": path}
            if position:
                details.update(line=position.line, column=position.column)
            raise InvalidInput(
                f"Liquid syntax error in {path}{where}: {exc.message}", **details
            ) from exc


def _compile_mjml(source: str, prefix: str) -> str:
    try:
        return str(mjml.mjml2html(source))
    except (ValueError, RuntimeError) as exc:
        raise InvalidInput(f"MJML does not compile: {exc}", path=prefix + "mjml") from exc


def _liquid_fields(variant: TemplateVariant, prefix: str) -> Iterator[tuple[str, str]]:
    for name in _CONTENT_FIELDS:
        if name in {"mjml", "whatsapp_template", "payload", "data"}:
            continue
        value = getattr(variant, name)
        if isinstance(value, str):
            yield prefix + name, value
    for key, value in (variant.data or {}).items():
        yield f"{prefix}data.{key}", value
    if variant.whatsapp_template is not None:
        yield from _string_leaves(
            list(variant.whatsapp_template.components), prefix + "whatsapp_template.components"
        )
    if variant.payload is not None:
        yield from _string_leaves(variant.payload, prefix + "payload")


def _string_leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _string_leaves(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _string_leaves(item, f"{path}[{index}]")


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message: the content for the channel provider and the variant used."""

    locale: str
    content: Content


@dataclass(slots=True)
class _Scope:
    """What the fields of one message render with: the template context, and the Liquid
    render contexts they share (plain and HTML) while no field leaves state in them."""

    values: dict[str, Any]
    contexts: dict[bool, RenderContext] = field(default_factory=dict)


_RENDER_ERRORS = (LiquidError, ArithmeticError, TypeError, ValueError, RecursionError)


class TemplateRenderer:
    """Renders prepared templates; parsed Liquid is cached by source (LRU). The fields of one
    message share one Liquid render context as long as each field leaves it as it found it
    (no `assign`, counters or cycles carried over), which gives the same output as a fresh
    context per field without building one per field."""

    _CACHE_SIZE: ClassVar[int] = 4096

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self.limits = limits or TemplateLimits()
        self._plain = _environment(self.limits, autoescape=False)
        self._html = _environment(self.limits, autoescape=True)
        self._cache: OrderedDict[tuple[bool, str], BoundTemplate] = OrderedDict()
        blank = self._plain.from_string("")
        fresh = blank.context_class(blank)
        self._fresh_scope_size = fresh.scope.size()
        self._fresh_tag_namespace = fresh.tag_namespace

    def render(
        self, template: PreparedTemplate, context: Mapping[str, Any], *, locale: str | None = None
    ) -> Rendered:
        """The content of `template` for one person; `TemplateRenderError` if rendering fails."""
        chosen = choose_locale(template.variants, locale)
        variant = template.variants[chosen]
        prefix = f"locales.{chosen}." if chosen else ""
        scope = _Scope(dict(context))

        def text(name: str) -> str | None:
            value = getattr(variant, name)
            return (
                None
                if value is None
                else self._render(value, scope, prefix + name, name in _HTML_FIELDS)
            )

        return Rendered(chosen, self._content(template.channel, variant, text, scope, prefix))

    def _content(
        self,
        channel: str,
        variant: TemplateVariant,
        text: Callable[[str], str | None],
        scope: _Scope,
        prefix: str,
    ) -> Content:
        if channel == "email":
            html = text("html")
            plain = text("text")
            if plain is None and html is not None:
                plain = html_to_text(html)
            return EmailContent(
                subject=_one_line(text("subject") or ""),
                html=html,
                text=plain,
                from_address=_opt_one_line(text("from_address")),
                reply_to=_opt_one_line(text("reply_to")),
            )
        if channel == "sms":
            return SmsContent(body=text("body") or "")
        if channel == "whatsapp":
            spec = variant.whatsapp_template
            if spec is None:
                return WhatsAppContent(text=text("body"))
            components = self._render_tree(
                list(spec.components), scope, prefix + "whatsapp_template.components"
            )
            return WhatsAppContent(
                template_name=spec.name, language=spec.language, components=tuple(components)
            )
        if channel in {"push", "webpush"}:
            return PushContent(
                title=text("title") or "",
                body=text("body") or "",
                url=text("url"),
                icon=text("icon"),
                image=text("image"),
                data=self._render_tree(variant.data or {}, scope, prefix + "data"),
            )
        if channel == "inapp":
            return InAppContent(
                title=text("title") or "",
                body=text("body") or "",
                url=text("url"),
                image=text("image"),
                data=self._render_tree(variant.data or {}, scope, prefix + "data"),
            )
        if channel == "webhook":
            return WebhookContent(
                payload=self._render_tree(variant.payload, scope, prefix + "payload"),
                event_type=text("event_type"),
            )
        raise TemplateRenderError(f"no content shape for channel {channel!r}", path="channel")

    def _render_tree(self, value: Any, scope: _Scope, path: str) -> Any:
        if isinstance(value, str):
            return self._render(value, scope, path, html=False)
        if isinstance(value, Mapping):
            return {k: self._render_tree(v, scope, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._render_tree(v, scope, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _render(self, source: str, scope: _Scope, path: str, html: bool) -> str:
        if "{" not in source:
            return source  # no Liquid markup (every tag and output starts with "{")
        try:
            template = self._parsed(source, html)
            try:
                shared = scope.contexts.get(html)
                if shared is None:
                    shared = template.context_class(
                        template, globals=template.make_globals(scope.values)
                    )
                    scope.contexts[html] = shared
                return self._render_shared(template, shared, scope, html)
            except _RENDER_ERRORS:
                # Whatever went wrong, the fresh render below reports it (or succeeds) as a
                # field rendered on its own always does.
                scope.contexts.pop(html, None)
            return template.render(scope.values)
        except LiquidError as exc:
            context = exc.context()
            details: dict[str, Any] = {"path": path}
            where = ""
            if context is not None:
                details.update(line=context[0], column=context[1] + 1)
                where = f" at line {context[0]}, column {context[1] + 1}"
            raise TemplateRenderError(
                f"{type(exc).__name__} in {path}{where}: {exc.message}", **details
            ) from exc
        except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            raise TemplateRenderError(f"{path}: {exc!r}", path=path) from exc

    def _render_shared(
        self, template: BoundTemplate, shared: RenderContext, scope: _Scope, html: bool
    ) -> str:
        """One field on the message's shared context, as `template.render` would do it on a
        fresh one; the context is given up if the field left anything in it."""
        # The buffer `render` uses: it enforces the output limit per field.
        buffer = template._get_buffer()
        template.render_with_context(shared, buffer)
        if not self._pristine(shared):
            scope.contexts.pop(html, None)
        return buffer.getvalue()

    def _pristine(self, context: RenderContext) -> bool:
        # State a field can leave behind for the next one: `assign`/`capture` (locals),
        # `increment`/`decrement` (counters), `cycle`, `ifchanged`, `offset: continue` (tag
        # namespace), and anything pushed on the scope or loop stacks.
        return (
            not context.locals
            and not context.counters
            and not context.loops
            and context.scope.size() == self._fresh_scope_size
            and context.tag_namespace == self._fresh_tag_namespace
        )

    def _parsed(self, source: str, html: bool) -> BoundTemplate:
        key = (html, source)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        template = (self._html if html else self._plain).from_string(source)
        self._cache[key] = template
        if len(self._cache) > self._CACHE_SIZE:
            self._cache.popitem(last=False)
        return template


def _one_line(value: str) -> str:
    # Header fields: a newline from profile data must never start a new header.
    return " ".join(value.split())


def _opt_one_line(value: str | None) -> str | None:
    return None if value is None else _one_line(value)


# ---------------------------------------------------------------------------------------------
# HTML → text


_BLOCKS = frozenset(
    {
        "p", "div", "table", "tr", "ul", "ol", "section", "article", "header", "footer",
        "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "center", "hr", "pre",
    }
)  # fmt: skip
_HIDDEN = frozenset({"head", "style", "script", "title", "template", "noscript"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._hidden = 0
        self._links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag == "td":
            self.out.append(" ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self.out)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt and not self._hidden:
                self.out.append(alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.out.append("\n\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = " ".join("".join(self.out[start:]).split())
            if href and href.startswith(("http://", "https://", "mailto:")) and href != label:
                target = href.removeprefix("mailto:")
                self.out.append(f" ({target})" if label else target)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML email: blocks on their own lines, links as
    `label (url)`, head/style/script and conditional comments dropped."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
