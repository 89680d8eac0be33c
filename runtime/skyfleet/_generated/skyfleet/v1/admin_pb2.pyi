from skyfleet._generated.skyfleet.v1 import membership_pb2 as _membership_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Member(_message.Message):
    __slots__ = ("node", "state", "incarnation", "state_age_seconds", "status", "status_age_seconds", "refusals")
    NODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    STATE_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REFUSALS_FIELD_NUMBER: _ClassVar[int]
    node: _membership_pb2.NodeMeta
    state: _membership_pb2.MemberState
    incarnation: int
    state_age_seconds: float
    status: _membership_pb2.NodeStatus
    status_age_seconds: float
    refusals: int
    def __init__(self, node: _Optional[_Union[_membership_pb2.NodeMeta, _Mapping]] = ..., state: _Optional[_Union[_membership_pb2.MemberState, str]] = ..., incarnation: _Optional[int] = ..., state_age_seconds: _Optional[float] = ..., status: _Optional[_Union[_membership_pb2.NodeStatus, _Mapping]] = ..., status_age_seconds: _Optional[float] = ..., refusals: _Optional[int] = ...) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("local_node", "members", "health_score")
    LOCAL_NODE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_SCORE_FIELD_NUMBER: _ClassVar[int]
    local_node: str
    members: _containers.RepeatedCompositeFieldContainer[Member]
    health_score: int
    def __init__(self, local_node: _Optional[str] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., health_score: _Optional[int] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("seeds",)
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    seeds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, seeds: _Optional[_Iterable[str]] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("members_up",)
    MEMBERS_UP_FIELD_NUMBER: _ClassVar[int]
    members_up: int
    def __init__(self, members_up: _Optional[int] = ...) -> None: ...
