import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from 'commander';
import { isoInstant } from '../../src/cli/program.js';

/**
 * `bulkhead delegation grant --expires`: which strings name one instant (sent to the broker in
 * UTC) and which are usage errors. `Date.parse` alone would accept several of the refusals.
 */
describe('isoInstant (--expires)', () => {
  it.each([
    ['2030-01-31T18:00:00Z', '2030-01-31T18:00:00.000Z'],
    ['2030-01-31T18:00:00.250Z', '2030-01-31T18:00:00.250Z'],
    ['2030-01-31T18:00:00.123456789Z', '2030-01-31T18:00:00.123Z'],
    ['2030-01-31T18:00Z', '2030-01-31T18:00:00.000Z'],
    ['2030-01-31T19:00:00+01:00', '2030-01-31T18:00:00.000Z'],
    ['2030-01-31T19:00:00+0100', '2030-01-31T18:00:00.000Z'],
    ['2030-01-31T12:15:00-05:45', '2030-01-31T18:00:00.000Z'],
    ['2030-02-01T00:30:00+06:30', '2030-01-31T18:00:00.000Z'],
    ['2030-01-31t18:00:00z', '2030-01-31T18:00:00.000Z'],
    ['2028-02-29T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['2000-02-29T00:00:00Z', '2000-02-29T00:00:00.000Z'],
    ['0050-06-01T00:00:00Z', '0050-06-01T00:00:00.000Z'],
  ])('%s → %s', (input, expected) => {
    expect(isoInstant(input)).toBe(expected);
    expect(Date.parse(isoInstant(input))).toBe(Date.parse(expected));
  });

  it.each([
    ['a date alone', '2030-01-31'],
    ['a local time without an offset', '2030-01-31T18:00:00'],
    ['a space for the T', '2030-01-31 18:00:00Z'],
    ['30 February', '2030-02-30T00:00:00Z'],
    ['29 February of a common year', '2030-02-29T00:00:00Z'],
    ['29 February of 1900', '1900-02-29T00:00:00Z'],
    ['month 13', '2030-13-01T00:00:00Z'],
    ['month 0', '2030-00-10T00:00:00Z'],
    ['day 0', '2030-01-00T00:00:00Z'],
    ['31 April', '2030-04-31T00:00:00Z'],
    ['hour 24', '2030-01-31T24:00:00Z'],
    ['minute 60', '2030-01-31T18:60:00Z'],
    ['second 60', '2030-01-31T18:00:60Z'],
    ['an offset of 24 hours', '2030-01-31T18:00:00+24:00'],
    ['an offset without minutes', '2030-01-31T18:00:00+01'],
    ['epoch seconds', '1896026400'],
    ['words', 'tomorrow'],
    ['an extended year', '+02030-01-31T18:00:00Z'],
    ['the empty string', ''],
  ])('%s (%s) is a usage error', (_why, input) => {
    expect(() => isoInstant(input)).toThrow(InvalidArgumentError);
    expect(() => isoInstant(input)).toThrow(/expected an ISO 8601 instant with an offset/);
  });
});
