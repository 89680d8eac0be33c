from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_OUTCOME_UNSPECIFIED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_SUCCEEDED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_FAILED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_DEADLINE_EXCEEDED: _ClassVar[TaskOutcome]
    TASK_OUTCOME_REJECTED: _ClassVar[TaskOutcome]
TASK_OUTCOME_UNSPECIFIED: TaskOutcome
TASK_OUTCOME_SUCCEEDED: TaskOutcome
TASK_OUTCOME_FAILED: TaskOutcome
TASK_OUTCOME_DEADLINE_EXCEEDED: TaskOutcome
TASK_OUTCOME_REJECTED: TaskOutcome

class Constraints(_message.Message):
    __slots__ = ("clouds", "regions")
    CLOUDS_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    clouds: _containers.RepeatedScalarFieldContainer[str]
    regions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, clouds: _Optional[_Iterable[str]] = ..., regions: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitTaskRequest(_message.Message):
    __slots__ = ("handler", "payload", "idempotency_key", "constraints", "kind", "request_id", "session")
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    handler: str
    payload: bytes
    idempotency_key: str
    constraints: Constraints
    kind: str
    request_id: str
    session: str
    def __init__(self, handler: _Optional[str] = ..., payload: _Optional[bytes] = ..., idempotency_key: _Optional[str] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., kind: _Optional[str] = ..., request_id: _Optional[str] = ..., session: _Optional[str] = ...) -> None: ...

class SubmitTaskResponse(_message.Message):
    __slots__ = ("request_id", "outcome", "output", "error", "executed_by", "attempts", "latency_ms", "duplicate")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    outcome: TaskOutcome
    output: bytes
    error: str
    executed_by: str
    attempts: int
    latency_ms: float
    duplicate: bool
    def __init__(self, request_id: _Optional[str] = ..., outcome: _Optional[_Union[TaskOutcome, str]] = ..., output: _Optional[bytes] = ..., error: _Optional[str] = ..., executed_by: _Optional[str] = ..., attempts: _Optional[int] = ..., latency_ms: _Optional[float] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("task", "routed_by", "attempt")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ROUTED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task: SubmitTaskRequest
    routed_by: str
    attempt: int
    def __init__(self, task: _Optional[_Union[SubmitTaskRequest, _Mapping]] = ..., routed_by: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("output", "executed_by", "duplicate")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_BY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    output: bytes
    executed_by: str
    duplicate: bool
    def __init__(self, output: _Optional[bytes] = ..., executed_by: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class TaskStreamEvent(_message.Message):
    __slots__ = ("chunk", "end")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    chunk: OutputChunk
    end: StreamEnd
    def __init__(self, chunk: _Optional[_Union[OutputChunk, _Mapping]] = ..., end: _Optional[_Union[StreamEnd, _Mapping]] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class StreamEnd(_message.Message):
    __slots__ = ("request_id", "outcome", "error", "executed_by", "attempts", "chunks", "bytes", "latency_ms", "first_chunk_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_CHUNK_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    outcome: TaskOutcome
    error: str
    executed_by: str
    attempts: int
    chunks: int
    bytes: int
    latency_ms: float
    first_chunk_ms: float
    def __init__(self, request_id: _Optional[str] = ..., outcome: _Optional[_Union[TaskOutcome, str]] = ..., error: _Optional[str] = ..., executed_by: _Optional[str] = ..., attempts: _Optional[int] = ..., chunks: _Optional[int] = ..., bytes: _Optional[int] = ..., latency_ms: _Optional[float] = ..., first_chunk_ms: _Optional[float] = ...) -> None: ...

class ExecuteStreamEvent(_message.Message):
    __slots__ = ("started", "chunk")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    started: ExecuteStarted
    chunk: OutputChunk
    def __init__(self, started: _Optional[_Union[ExecuteStarted, _Mapping]] = ..., chunk: _Optional[_Union[OutputChunk, _Mapping]] = ...) -> None: ...

class ExecuteStarted(_message.Message):
    __slots__ = ("executed_by",)
    EXECUTED_BY_FIELD_NUMBER: _ClassVar[int]
    executed_by: str
    def __init__(self, executed_by: _Optional[str] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("idempotency_key",)
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    def __init__(self, idempotency_key: _Optional[str] = ...) -> None: ...

class CancelTaskResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...
