package schema

// RuleConcurrent: the caller had more calls up at once than the policy's
// limit (CallReceived.Concurrent says how many, this one included).
const RuleConcurrent Rule = "concurrent"
