// The client's API speaks the Core's value types (ids, ranges, grants, errors): a
// program that imports LeaseholdClient sees them without importing LeaseholdCore.
@_exported import LeaseholdCore
