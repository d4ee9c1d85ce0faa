export { seededRandom, pickSeed } from './random.js';
export { withFaults, CrashError, CRASH_POINTS, type CrashPoint, type FaultOptions, type FaultCounts, type FaultyStorage } from './faults.js';
export {
  checkDeliveries,
  checkSubscriptions,
  guaranteeHeld,
  type DeliveryHistory,
  type DeliveryCheck,
  type Effect,
  type CrashRecord,
  type GuaranteeVerdict,
} from './checker.js';
