from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBER_STATE_UNSPECIFIED: _ClassVar[MemberState]
    MEMBER_STATE_ALIVE: _ClassVar[MemberState]
    MEMBER_STATE_SUSPECT: _ClassVar[MemberState]
    MEMBER_STATE_DEAD: _ClassVar[MemberState]
    MEMBER_STATE_LEFT: _ClassVar[MemberState]
MEMBER_STATE_UNSPECIFIED: MemberState
MEMBER_STATE_ALIVE: MemberState
MEMBER_STATE_SUSPECT: MemberState
MEMBER_STATE_DEAD: MemberState
MEMBER_STATE_LEFT: MemberState

class NodeMeta(_message.Message):
    __slots__ = ("name", "address", "cloud", "region", "zone", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CLOUD_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    cloud: str
    region: str
    zone: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., cloud: _Optional[str] = ..., region: _Optional[str] = ..., zone: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Alive(_message.Message):
    __slots__ = ("node", "incarnation", "signature")
    NODE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node: NodeMeta
    incarnation: int
    signature: bytes
    def __init__(self, node: _Optional[_Union[NodeMeta, _Mapping]] = ..., incarnation: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Suspect(_message.Message):
    __slots__ = ("node", "incarnation", "source")
    NODE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    node: str
    incarnation: int
    source: str
    def __init__(self, node: _Optional[str] = ..., incarnation: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class Dead(_message.Message):
    __slots__ = ("node", "incarnation", "source", "signature")
    NODE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node: str
    incarnation: int
    source: str
    signature: bytes
    def __init__(self, node: _Optional[str] = ..., incarnation: _Optional[int] = ..., source: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node", "incarnation", "seq", "policy_version", "policy_hash", "inflight", "queued", "capacity", "latency_ms", "error_rate", "age_ms", "handlers")
    NODE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    AGE_MS_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    node: str
    incarnation: int
    seq: int
    policy_version: int
    policy_hash: str
    inflight: int
    queued: int
    capacity: int
    latency_ms: float
    error_rate: float
    age_ms: int
    handlers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node: _Optional[str] = ..., incarnation: _Optional[int] = ..., seq: _Optional[int] = ..., policy_version: _Optional[int] = ..., policy_hash: _Optional[str] = ..., inflight: _Optional[int] = ..., queued: _Optional[int] = ..., capacity: _Optional[int] = ..., latency_ms: _Optional[float] = ..., error_rate: _Optional[float] = ..., age_ms: _Optional[int] = ..., handlers: _Optional[_Iterable[str]] = ...) -> None: ...

class Update(_message.Message):
    __slots__ = ("alive", "suspect", "dead", "status")
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    alive: Alive
    suspect: Suspect
    dead: Dead
    status: NodeStatus
    def __init__(self, alive: _Optional[_Union[Alive, _Mapping]] = ..., suspect: _Optional[_Union[Suspect, _Mapping]] = ..., dead: _Optional[_Union[Dead, _Mapping]] = ..., status: _Optional[_Union[NodeStatus, _Mapping]] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("seq", "target")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    seq: int
    target: str
    def __init__(self, seq: _Optional[int] = ..., target: _Optional[str] = ...) -> None: ...

class IndirectPing(_message.Message):
    __slots__ = ("seq", "target", "target_address", "want_nack")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WANT_NACK_FIELD_NUMBER: _ClassVar[int]
    seq: int
    target: str
    target_address: str
    want_nack: bool
    def __init__(self, seq: _Optional[int] = ..., target: _Optional[str] = ..., target_address: _Optional[str] = ..., want_nack: _Optional[bool] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class MemberRecord(_message.Message):
    __slots__ = ("node", "state", "incarnation", "signature")
    NODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node: NodeMeta
    state: MemberState
    incarnation: int
    signature: bytes
    def __init__(self, node: _Optional[_Union[NodeMeta, _Mapping]] = ..., state: _Optional[_Union[MemberState, str]] = ..., incarnation: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PushPull(_message.Message):
    __slots__ = ("join", "is_reply", "members", "statuses")
    JOIN_FIELD_NUMBER: _ClassVar[int]
    IS_REPLY_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    join: bool
    is_reply: bool
    members: _containers.RepeatedCompositeFieldContainer[MemberRecord]
    statuses: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    def __init__(self, join: _Optional[bool] = ..., is_reply: _Optional[bool] = ..., members: _Optional[_Iterable[_Union[MemberRecord, _Mapping]]] = ..., statuses: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ...) -> None: ...

class Packet(_message.Message):
    __slots__ = ("sender", "sender_address", "ping", "indirect_ping", "ack", "nack", "push_pull", "piggyback", "certificates", "want_claims")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    SENDER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    INDIRECT_PING_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    NACK_FIELD_NUMBER: _ClassVar[int]
    PUSH_PULL_FIELD_NUMBER: _ClassVar[int]
    PIGGYBACK_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    WANT_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    sender: str
    sender_address: str
    ping: Ping
    indirect_ping: IndirectPing
    ack: Ack
    nack: Nack
    push_pull: PushPull
    piggyback: _containers.RepeatedCompositeFieldContainer[Update]
    certificates: _containers.RepeatedScalarFieldContainer[bytes]
    want_claims: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sender: _Optional[str] = ..., sender_address: _Optional[str] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., indirect_ping: _Optional[_Union[IndirectPing, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., nack: _Optional[_Union[Nack, _Mapping]] = ..., push_pull: _Optional[_Union[PushPull, _Mapping]] = ..., piggyback: _Optional[_Iterable[_Union[Update, _Mapping]]] = ..., certificates: _Optional[_Iterable[bytes]] = ..., want_claims: _Optional[_Iterable[str]] = ...) -> None: ...
