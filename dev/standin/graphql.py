"""The GraphQL side: builds the schema with AppSync's scalars and directives, resolves
UserProfile operations against the in-memory store, and renders validation, syntax and
resolver errors in the shapes AppSync (graphql-java) answers with.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    ObjectValueNode,
    VariableNode,
    build_schema,
    parse,
    validate,
)
from graphql.language import FragmentDefinitionNode, Visitor, visit
from graphql.utilities import value_from_ast_untyped

from .common import LOG, aws_datetime, dynamodb_request_id, epoch_micros, now_utc

if TYPE_CHECKING:
    from .state import State

DEFAULT_LIST_LIMIT = 100

APPSYNC_PRELUDE = """
scalar AWSDate
scalar AWSTime
scalar AWSDateTime
scalar AWSTimestamp
scalar AWSEmail
scalar AWSJSON
scalar AWSURL
scalar AWSPhone
scalar AWSIPAddress
directive @aws_iam on OBJECT | FIELD_DEFINITION
directive @aws_api_key on OBJECT | FIELD_DEFINITION
directive @aws_oidc on OBJECT | FIELD_DEFINITION
directive @aws_lambda on OBJECT | FIELD_DEFINITION
directive @aws_cognito_user_pools(cognito_groups: [String]) on OBJECT | FIELD_DEFINITION
directive @aws_auth(cognito_groups: [String]) on FIELD_DEFINITION
directive @aws_subscribe(mutations: [String]) on FIELD_DEFINITION
"""

# AppSync's wording per errorType.  Kept here, not in faults.py, because the duplicate-create
# resolver answers with the real ConditionalCheckFailed text; injected faults reuse it.
ERRORTYPE_MESSAGES = {
    "Unauthorized": "Not Authorized to access {field} on type {parent}",
    "DynamoDB:ProvisionedThroughputExceededException": (
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API. "
        "(Service: DynamoDb, Status Code: 400, Request ID: {request_id})"
    ),
    "DynamoDB:ConditionalCheckFailedException": (
        "The conditional request failed (Service: DynamoDb, Status Code: 400, Request ID: {request_id})"
    ),
    "DynamoDB:ThrottlingException": (
        "Rate of requests exceeds the allowed throughput. "
        "(Service: DynamoDb, Status Code: 400, Request ID: {request_id})"
    ),
    "DynamoDB:InternalServerError": (
        "Internal server error (Service: DynamoDb, Status Code: 500, Request ID: {request_id})"
    ),
    "ExecutionTimeout": "Execution timed out.",
    "MappingTemplate": "Template transformation yielded an empty response.",
    "Lambda:Unhandled": "Unhandled exception",
}


class AppSyncError(Exception):
    """A resolver error rendered in AppSync's shape."""

    def __init__(self, error_type: str, message: str, data: Any = None, error_info: Any = None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.data = data
        self.error_info = error_info


class _PathVisitor(Visitor):
    """Maps every node inside a field to the 'a/b/c' field path (graphql-java style)."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.paths: dict[int, str] = {}

    def enter(self, node, *_args):
        if isinstance(node, FieldNode):
            self.stack.append(node.name.value)
        if self.stack:
            self.paths[id(node)] = "/".join(self.stack)

    def leave(self, node, *_args):
        if isinstance(node, FieldNode):
            self.stack.pop()


_VALIDATION_PATTERNS: list[tuple[re.Pattern, Any]] = [
    (
        re.compile(r"Cannot query field '([^']+)' on type '([^']+)'\."),
        lambda m: ("FieldUndefined", f"Field '{m[1]}' in type '{m[2]}' is undefined"),
    ),
    (
        re.compile(r"Unknown argument '([^']+)' on field '([^']+)'\."),
        lambda m: ("UnknownArgument", f"Unknown field argument {m[1]}"),
    ),
    (
        re.compile(r"Unknown argument '([^']+)' on directive '([^']+)'\."),
        lambda m: ("UnknownDirective", f"Unknown directive argument {m[1]}"),
    ),
    (
        re.compile(r"Field '([^']+)' argument '([^']+)' of type '([^']+)' is required"),
        lambda m: ("MissingFieldArgument", f"Missing field argument {m[2]}"),
    ),
    (
        re.compile(r"Variable '\$([^']+)' of type '([^']+)' used in position expecting type '([^']+)'\."),
        lambda m: (
            "VariableTypeMismatch",
            f"Variable type '{m[2]}' doesn't match expected type '{m[3]}'",
        ),
    ),
    (re.compile(r"Unknown type '([^']+)'\."), lambda m: ("UnknownType", f"Unknown type {m[1]}")),
    (
        re.compile(r"Field '([^']+)' of type '([^']+)' must have a selection of subfields"),
        lambda m: (
            "SubSelectionRequired",
            f"Sub selection required for type {m[2].strip('[]!')} of field {m[1]}",
        ),
    ),
    (
        re.compile(r"Field '([^']+)' must not have a selection since type '([^']+)' has no subfields\."),
        lambda m: (
            "SubSelectionNotAllowed",
            f"Sub selection not allowed on leaf type {m[2].strip('[]!')} of field {m[1]}",
        ),
    ),
    (
        re.compile(r"Variable '\$([^']+)' is not defined"),
        lambda m: ("UndefinedVariable", f"Undefined variable {m[1]}"),
    ),
    (
        re.compile(r"Variable '\$([^']+)' is never used"),
        lambda m: ("UnusedVariable", f"Unused variable {m[1]}"),
    ),
    (
        re.compile(r"Variable '\$([^']+)' cannot be non-input type '([^']+)'\."),
        lambda m: ("NonInputTypeOnVariable", f"Input type {m[2]} is non-input type"),
    ),
    (
        re.compile(r"There can be only one variable named '\$([^']+)'\."),
        lambda m: ("DuplicateVariableName", f"There can be only one variable named {m[1]}"),
    ),
    (
        re.compile(r"There can be only one argument named '([^']+)'\."),
        lambda m: ("DuplicateArgumentNames", f"There can be only one argument named {m[1]}"),
    ),
    (
        re.compile(r"There can be only one operation named '([^']+)'\."),
        lambda m: ("DuplicateOperationName", f"There can be only one operation named {m[1]}"),
    ),
    (
        re.compile(r"This anonymous operation must be the only defined operation\."),
        lambda m: ("LoneAnonymousOperationViolation", "Anonymous operations must be the only defined operation"),
    ),
    (
        re.compile(r"Unknown fragment '([^']+)'\."),
        lambda m: ("UndefinedFragment", f"Undefined fragment {m[1]}"),
    ),
    (
        re.compile(r"Fragment '([^']+)' is never used\."),
        lambda m: ("UnusedFragment", f"Unused fragment {m[1]}"),
    ),
    (
        re.compile(r"Unknown directive '@?([^']+)'\."),
        lambda m: ("UnknownDirective", f"Unknown directive {m[1]}"),
    ),
    (
        re.compile(r"Fields '([^']+)' conflict because"),
        lambda m: ("FieldsConflict", m.string.rstrip(".")),
    ),
    (
        re.compile(r"Fragment .* cannot be spread here"),
        lambda m: ("InvalidFragmentType", m.string.rstrip(".")),
    ),
    (
        re.compile(r"The '([^']+)' definition is not executable\."),
        lambda m: ("NonExecutableDefinition", f"Type '{m[1]}' definition should not be present in a query"),
    ),
    (
        re.compile(r"Schema does not define the required query root type|Schema is not configured"),
        lambda m: ("UnknownOperation", m.string.rstrip(".")),
    ),
    (
        re.compile(
            r"(Expected value of type|Field '[^']+' of required type|Field '[^']+' is not defined by type"
            r"|String cannot represent|Int cannot represent|ID cannot represent|Boolean cannot represent"
            r"|Float cannot represent|Enum '[^']+' cannot represent)"
        ),
        lambda m: ("WrongType", m.string.rstrip(".")),
    ),
]


def _locations(error: GraphQLError) -> list[dict[str, Any]] | None:
    if not error.locations:
        return None
    return [{"line": loc.line, "column": loc.column, "sourceName": None} for loc in error.locations]


def validation_error_to_appsync(error: GraphQLError, paths: dict[int, str]) -> dict[str, Any]:
    message = error.message
    # graphql-core adds "Did you mean ...?" suggestions; graphql-java does not.
    message = re.sub(r"\s*Did you mean .*\?$", "", message)
    kind, text = "ValidationError", message.rstrip(".")
    for pattern, render in _VALIDATION_PATTERNS:
        m = pattern.search(message)
        if m:
            kind, text = render(m)
            break
    field_path = None
    for node in reversed(error.nodes or []):
        field_path = paths.get(id(node))
        if field_path:
            break
    suffix = f" @ '{field_path}'" if field_path else ""
    return {
        "path": None,
        "locations": _locations(error),
        "message": f"Validation error of type {kind}: {text}{suffix}",
    }


def syntax_error_to_appsync(error: GraphQLSyntaxError) -> dict[str, Any]:
    desc = getattr(error, "description", None) or error.message
    loc = error.locations[0] if error.locations else None
    where = f" at line {loc.line} column {loc.column}" if loc else ""
    return {
        "path": None,
        "locations": _locations(error),
        "message": f"Invalid Syntax : {desc.rstrip('.')}{where}",
    }


def request_error_to_appsync(error: GraphQLError) -> dict[str, Any]:
    """Errors raised before execution starts (variable coercion, operation choice)."""
    msg = error.message
    m = re.match(r"Variable '\$([^']+)' of required type '([^']+)' was not provided\.", msg)
    if m:
        msg = f"Variable '{m[1]}' has coerced Null value for NonNull type '{m[2]}'"
    else:
        m = re.match(r"Variable '\$([^']+)' of non-null type '([^']+)' must not be null\.", msg)
        if m:
            msg = f"Variable '{m[1]}' has coerced Null value for NonNull type '{m[2]}'"
        else:
            m = re.match(r"Variable '\$([^']+)' got invalid value (.*?); (.*)$", msg, re.S)
            if m:
                msg = f"Variable '{m[1]}' has an invalid value: {m[3].rstrip('.')}"
            else:
                m = re.match(r"Unknown operation named '([^']+)'\.", msg)
                if m:
                    msg = f"Unknown operation named '{m[1]}'."
    return {"path": None, "locations": _locations(error), "message": msg}


def field_error_to_appsync(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    if isinstance(original, AppSyncError):
        error_type, data, info, message = (
            original.error_type, original.data, original.error_info, original.message
        )
    else:
        error_type, data, info, message = None, None, None, error.message
        if original is not None:
            LOG.error("resolver failure at %s: %r", error.path, original)
    return {
        "path": list(error.path) if error.path else None,
        "data": data,
        "errorType": error_type,
        "errorInfo": info,
        "locations": _locations(error),
        "message": message,
    }


class CompiledDocument:
    __slots__ = ("document", "errors", "paths")

    def __init__(self, document, errors, paths):
        self.document = document
        self.errors = errors
        self.paths = paths


def top_level_fields(document, operation_name: str | None):
    """Return (operation, [(response_key, FieldNode)]) for the selected operation."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    op = None
    if operation_name:
        op = next((o for o in operations if o.name and o.name.value == operation_name), None)
    elif len(operations) == 1:
        op = operations[0]
    if op is None:
        return None, []
    out: list[tuple[str, FieldNode]] = []
    seen_fragments: set[str] = set()

    def walk(selection_set):
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                out.append(((sel.alias or sel.name).value, sel))
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in fragments and name not in seen_fragments:
                    seen_fragments.add(name)
                    walk(fragments[name].selection_set)

    walk(op.selection_set)
    return op, out


def input_ids(fields, variables: dict[str, Any], field_name: str) -> list[Any]:
    """input.id of every `field_name` field (createUserProfile, deleteUserProfile) of the
    operation; None when absent or unknown."""
    ids = []
    for _key, node in fields:
        if node.name.value != field_name:
            continue
        value = None
        for arg in node.arguments or []:
            if arg.name.value != "input":
                continue
            if isinstance(arg.value, VariableNode):
                value = variables.get(arg.value.name.value)
            elif isinstance(arg.value, ObjectValueNode):
                try:
                    value = value_from_ast_untyped(arg.value, variables)
                except Exception:  # noqa: BLE001 - best effort for matching only
                    value = None
        ids.append(value.get("id") if isinstance(value, dict) else None)
    return ids


def create_input_ids(fields, variables: dict[str, Any]) -> list[Any]:
    """input.id of every createUserProfile field (None when absent/unknown)."""
    return input_ids(fields, variables, "createUserProfile")


def delete_input_ids(fields, variables: dict[str, Any]) -> list[Any]:
    """input.id of every deleteUserProfile field (None when absent/unknown)."""
    return input_ids(fields, variables, "deleteUserProfile")


class StandIn:
    """The AppSync behaviour: schema and resolvers over the State's store."""

    def __init__(self, schema_sdl: str, state: State):
        self.state = state
        self.schema = build_schema(APPSYNC_PRELUDE + "\n" + schema_sdl)
        mutation = self.schema.mutation_type
        query = self.schema.query_type
        mutation.fields["createUserProfile"].resolve = self._create_user_profile
        mutation.fields["deleteUserProfile"].resolve = self._delete_user_profile
        query.fields["getUserProfile"].resolve = self._get_user_profile
        query.fields["listUserProfiles"].resolve = self._list_user_profiles
        self.schema.type_map["UserProfile"].fields["profileOwner"].resolve = owner_as_read
        self._compile = lru_cache(maxsize=256)(self._compile_uncached)

    def _compile_uncached(self, query: str):
        try:
            document = parse(query)
        except GraphQLSyntaxError as e:
            return e
        errors = validate(self.schema, document)
        paths: dict[int, str] = {}
        if errors:
            pv = _PathVisitor()
            visit(document, pv)
            paths = pv.paths
        return CompiledDocument(document, errors, paths)

    def compile(self, query: str):
        return self._compile(query)

    # -- resolvers
    def _create_user_profile(self, _root, _info, input, condition=None):  # noqa: A002
        profile_id = input.get("id")
        if profile_id is None:
            profile_id = str(uuid.uuid4())
        if profile_id == "":
            raise _empty_key_error()
        moment = now_utc()
        now = aws_datetime(moment)
        # As Amplify's create resolver: the defaults, then the input as given (a field left
        # out is not stored), then the type name.
        item = {"id": profile_id, "createdAt": now, "updatedAt": now}
        item.update(input)
        item["id"] = profile_id
        item["__typename"] = "UserProfile"
        st = self.state
        with st.lock:
            # Amplify's resolver puts with `attribute_not_exists(id) AND <condition>`: a new
            # item has no attributes yet, so the condition is judged on an empty one.
            duplicate = profile_id in st.profiles
            refused = not duplicate and not _filter_matches(condition, {})
            if duplicate:
                st.counters["duplicates"] += 1
                st.per_id(profile_id, "duplicates")
            elif not refused:
                st.profiles[profile_id] = item
                st.counters["created"] += 1
                st.per_id(profile_id, "created")
                st.record_created_at(profile_id, epoch_micros(moment))
        if duplicate or refused:
            raise AppSyncError(
                "DynamoDB:ConditionalCheckFailedException",
                ERRORTYPE_MESSAGES["DynamoDB:ConditionalCheckFailedException"].format(
                    request_id=dynamodb_request_id()
                ),
            )
        return dict(item)

    def _delete_user_profile(self, _root, _info, input, condition=None):  # noqa: A002
        """Amplify's generated delete on a model without conflict detection: a DeleteItem
        (hard delete, the old item returned) under `attribute_exists(id) AND <condition>`.

        When that condition fails, AppSync's DynamoDB data source reads the item again
        ("Checking for the desired result" in AppSync's condition-expression reference): for
        a DeleteItem, no item there means the delete is treated as successful; an item there
        means the default Reject strategy, DynamoDB:ConditionalCheckFailedException. So a
        missing id answers `deleteUserProfile: null` with no error, and an existing item whose
        `condition` fails is refused. (Amplify's simulator answers the missing id with the
        ConditionalCheckFailed error instead; a fault rule reproduces that, see README.)
        """
        profile_id = input.get("id")
        if profile_id == "":
            raise _empty_key_error()
        st = self.state
        with st.lock:
            item = st.profiles.get(profile_id)
            refused = item is not None and not _filter_matches(condition, item)
            if item is None:
                st.counters["deleteMissing"] += 1
                st.per_id(profile_id, "deleteMissing")
            elif not refused:
                del st.profiles[profile_id]
                st.counters["deleted"] += 1
                st.per_id(profile_id, "deleted")
                st.record_deleted_at(profile_id, epoch_micros(now_utc()))
        if refused:
            raise AppSyncError(
                "DynamoDB:ConditionalCheckFailedException",
                ERRORTYPE_MESSAGES["DynamoDB:ConditionalCheckFailedException"].format(
                    request_id=dynamodb_request_id()
                ),
            )
        return dict(item) if item is not None else None

    def _get_user_profile(self, _root, _info, id):  # noqa: A002
        with self.state.lock:
            item = self.state.profiles.get(id)
            return dict(item) if item else None

    def _list_user_profiles(self, _root, _info, filter=None, limit=None, nextToken=None):  # noqa: A002
        start = 0
        if nextToken is not None:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(nextToken.encode()).decode())
                start = int(decoded["offset"])
                if start < 0:
                    raise ValueError
            except Exception:  # noqa: BLE001
                raise AppSyncError(
                    "DynamoDB:DynamoDbException",
                    "Invalid pagination token given. "
                    f"(Service: DynamoDb, Status Code: 400, Request ID: {dynamodb_request_id()})",
                ) from None
        if limit is None:
            limit = DEFAULT_LIST_LIMIT
        if limit <= 0:
            raise AppSyncError(
                "DynamoDB:DynamoDbException",
                "1 validation error detected: Value at 'limit' failed to satisfy constraint: "
                "Member must have value greater than or equal to 1 "
                f"(Service: DynamoDb, Status Code: 400, Request ID: {dynamodb_request_id()})",
            )
        with self.state.lock:
            items = list(self.state.profiles.values())
        scanned = items[start:start + limit]
        end = start + len(scanned)
        out = [dict(i) for i in scanned if _filter_matches(filter, i)]
        token = None
        if end < len(items):
            token = base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode()
        return {"items": out, "nextToken": token}


def _empty_key_error() -> AppSyncError:
    """DynamoDB's refusal of an empty-string key, as AppSync passes it on."""
    return AppSyncError(
        "DynamoDB:DynamoDbException",
        "One or more parameter values are not valid. The AttributeValue for a key "
        "attribute cannot contain an empty string value. Key: id "
        f"(Service: DynamoDb, Status Code: 400, Request ID: {dynamodb_request_id()})",
    )


def owner_as_read(source: dict[str, Any], _info) -> Any:
    """`profileOwner` as Amplify's owner-field resolver returns it (UserProfile.profileOwner.res.vtl,
    with useSubUsernameForDefaultIdentityClaim): only what follows the last "::", i.e. the
    username of a stored "<sub>::<username>". Java's String.split drops trailing empty parts."""
    owner = source.get("profileOwner")
    if not isinstance(owner, str):
        return owner
    parts = owner.split("::")
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts[-1]


def _cond_matches(cond: dict[str, Any] | None, value: Any) -> bool:
    if not cond:
        return True
    for op, arg in cond.items():
        if arg is None:
            continue
        if op == "eq" and value != arg:
            return False
        if op == "ne" and value == arg:
            return False
        if op == "attributeExists" and (value is not None) != arg:
            return False
        if op in ("le", "lt", "ge", "gt", "beginsWith", "contains", "notContains", "between"):
            if not isinstance(value, str):
                return False
            if op == "le" and not value <= arg:
                return False
            if op == "lt" and not value < arg:
                return False
            if op == "ge" and not value >= arg:
                return False
            if op == "gt" and not value > arg:
                return False
            if op == "beginsWith" and not value.startswith(arg):
                return False
            if op == "contains" and arg not in value:
                return False
            if op == "notContains" and arg in value:
                return False
            if op == "between" and not (len(arg) == 2 and arg[0] <= value <= arg[1]):
                return False
    return True


def _filter_matches(flt: dict[str, Any] | None, item: dict[str, Any]) -> bool:
    if not flt:
        return True
    for key, cond in flt.items():
        if cond is None:
            continue
        if key == "and":
            if not all(_filter_matches(c, item) for c in cond):
                return False
        elif key == "or":
            if not any(_filter_matches(c, item) for c in cond):
                return False
        elif key == "not":
            if _filter_matches(cond, item):
                return False
        elif not _cond_matches(cond, item.get(key)):
            return False
    return True
