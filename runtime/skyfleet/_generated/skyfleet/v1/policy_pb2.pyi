from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class FetchPolicyRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class FetchPolicyResponse(_message.Message):
    __slots__ = ("envelope", "version", "hash")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    version: int
    hash: str
    def __init__(self, envelope: _Optional[bytes] = ..., version: _Optional[int] = ..., hash: _Optional[str] = ...) -> None: ...

class PublishPolicyRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: bytes
    def __init__(self, envelope: _Optional[bytes] = ...) -> None: ...

class PublishPolicyResponse(_message.Message):
    __slots__ = ("outcome", "version", "hash", "reason", "current_version")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    version: int
    hash: str
    reason: str
    current_version: int
    def __init__(self, outcome: _Optional[str] = ..., version: _Optional[int] = ..., hash: _Optional[str] = ..., reason: _Optional[str] = ..., current_version: _Optional[int] = ...) -> None: ...
