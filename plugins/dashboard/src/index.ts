export { createDashboard, type Dashboard, type DashboardHandler, type DashboardOptions, type Listening } from './dashboard.js';
export { DashboardListenError, DashboardRequestError, DashboardTokenRequiredError, InvalidPortError, type DashboardRequestErrorCode } from './errors.js';
export { isLoopback } from './auth.js';
export { applyChange, changeBetween, type SnapshotChange, type TopicChange } from './changes.js';
export { ACTIONS, type ActionName } from './actions.js';
export type { MessagesPage, MessageAnswer } from './messages.js';
export type { Snapshot, TopicView, SubscriptionView, SeriesPoint, DeadLetterRow, LeaseRow, MonitorMode } from './monitor.js';
