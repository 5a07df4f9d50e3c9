// The client's API speaks the Core's value types (ids, ranges, grants, views, errors): a
// program that imports LeaseholdClient sees exactly these, without importing
// LeaseholdCore. The Core's machinery (the Coordinator, change sets, the invariant
// checker, commands and effects) stays out of a client's namespace.

// Identities, ranges and settings.
@_exported import struct LeaseholdCore.BlockRange
@_exported import struct LeaseholdCore.ByteRange
@_exported import struct LeaseholdCore.EventRevision
@_exported import struct LeaseholdCore.FenceRevision
@_exported import struct LeaseholdCore.FencingToken
@_exported import struct LeaseholdCore.InodeID
@_exported import struct LeaseholdCore.LayoutID
@_exported import struct LeaseholdCore.LayoutStateID
@_exported import struct LeaseholdCore.PinID
@_exported import struct LeaseholdCore.RecallID
@_exported import struct LeaseholdCore.SessionID
@_exported import struct LeaseholdCore.SessionSecret
@_exported import struct LeaseholdCore.VolumeGeometry
@_exported import enum LeaseholdCore.IOMode
@_exported import enum LeaseholdCore.PinKind
@_exported import enum LeaseholdCore.PinSetting
@_exported import enum LeaseholdCore.TruncatePolicy
@_exported import enum LeaseholdCore.EvictionReason
@_exported import enum LeaseholdCore.InodeKind
@_exported import struct LeaseholdCore.QuarantineSource
@_exported import struct LeaseholdCore.HostPort

// Errors.
@_exported import struct LeaseholdCore.LeaseholdError

// Grants and results of mutations.
@_exported import struct LeaseholdCore.Allocation
@_exported import struct LeaseholdCore.LayoutExtent
@_exported import struct LeaseholdCore.LayoutGrantReply
@_exported import struct LeaseholdCore.LayoutReturned
@_exported import struct LeaseholdCore.MappingChange
@_exported import struct LeaseholdCore.PinGrant
@_exported import struct LeaseholdCore.PinnedExtent
@_exported import struct LeaseholdCore.MappedExtent
@_exported import struct LeaseholdCore.SessionGrant

// Pushes and feeds.
@_exported import struct LeaseholdCore.Fence
@_exported import struct LeaseholdCore.FenceNotice
@_exported import struct LeaseholdCore.LayoutRecallNotice
@_exported import struct LeaseholdCore.PinRecallNotice
@_exported import struct LeaseholdCore.Event
@_exported import struct LeaseholdCore.StorageTarget

// Admin views.
@_exported import struct LeaseholdCore.BusyExtentInfo
@_exported import struct LeaseholdCore.InodeDetail
@_exported import struct LeaseholdCore.InodeInfo
@_exported import struct LeaseholdCore.InvariantViolation
@_exported import struct LeaseholdCore.LayoutInfo
@_exported import struct LeaseholdCore.Page
@_exported import struct LeaseholdCore.PinInfo
@_exported import struct LeaseholdCore.SessionInfo
@_exported import struct LeaseholdCore.TargetInfo
@_exported import struct LeaseholdCore.VolumeStatus

// Cluster mode: what a node is (`server.role`, `clusterStatus`).
@_exported import enum LeaseholdMessages.NodeRole
