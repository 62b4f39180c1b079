from baton_common.proto import lp_rpc_pb2 as _lp_rpc_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ticket(_message.Message):
    __slots__ = ("ticket_params", "sender", "expiration_params", "sender_params", "recipient_rand")
    TICKET_PARAMS_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_PARAMS_FIELD_NUMBER: _ClassVar[int]
    SENDER_PARAMS_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_RAND_FIELD_NUMBER: _ClassVar[int]
    ticket_params: _lp_rpc_pb2.TicketParams
    sender: bytes
    expiration_params: _lp_rpc_pb2.TicketExpirationParams
    sender_params: _lp_rpc_pb2.TicketSenderParams
    recipient_rand: bytes
    def __init__(self, ticket_params: _Optional[_Union[_lp_rpc_pb2.TicketParams, _Mapping]] = ..., sender: _Optional[bytes] = ..., expiration_params: _Optional[_Union[_lp_rpc_pb2.TicketExpirationParams, _Mapping]] = ..., sender_params: _Optional[_Union[_lp_rpc_pb2.TicketSenderParams, _Mapping]] = ..., recipient_rand: _Optional[bytes] = ...) -> None: ...

class QueueTicketRes(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MaxFloatReq(_message.Message):
    __slots__ = ("sender",)
    SENDER_FIELD_NUMBER: _ClassVar[int]
    sender: bytes
    def __init__(self, sender: _Optional[bytes] = ...) -> None: ...

class MaxFloatUpdate(_message.Message):
    __slots__ = ("max_float",)
    MAX_FLOAT_FIELD_NUMBER: _ClassVar[int]
    max_float: bytes
    def __init__(self, max_float: _Optional[bytes] = ...) -> None: ...
