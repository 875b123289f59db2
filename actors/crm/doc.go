// Package crm asks the bank's CRM about a caller before the decision: is
// the number a customer's, is the customer VIP, and what the PBX may show
// its agents (name, segment).
//
// The contract (openapi.json beside this file, README "The CRM's VIPs"):
//
//	GET {GUARD_CRM_URL}?number=+79991234567
//	Authorization: Bearer {GUARD_CRM_TOKEN}   (when set)
//	Accept: application/json
//
//	200 application/json {"vip": true, "name": "Ivan Petrov", "segment": "private"}
//	404                  the number is no customer's
//
// Anything else (another status, another content type, a body that is not
// that JSON or is larger than MaxBody, no answer within the time budget)
// is an error: the call is decided without the CRM, never delayed past
// the budget nor failed because of it. Answers are cached per number for
// a TTL (a shorter one for "no customer"); failures are not cached.
package crm
