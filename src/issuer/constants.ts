/** A client assertion (RFC 7523) may live at most this long; longer ones are refused. */
export const MAX_ASSERTION_LIFETIME_SECONDS = 300;
/** Clock skew tolerated on every time claim Bulkhead checks (assertions, presented tokens). */
export const CLOCK_TOLERANCE_SECONDS = 15;
