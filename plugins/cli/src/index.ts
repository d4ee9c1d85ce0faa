export { stats, dlqList, dlqRedrive, purge, processOutput, formatDuration } from './commands.js';
export type {
  Output,
  DbOptions,
  StatsOptions,
  StatsResult,
  SubscriptionStats,
  DlqListOptions,
  DlqListResult,
  DlqRedriveOptions,
  DlqRedriveResult,
  PurgeOptions,
  PurgeResult,
} from './commands.js';
export {
  subscriptionsList,
  subscriptionsRemove,
  type SubscriptionsListOptions,
  type SubscriptionListing,
  type SubscriptionsRemoveOptions,
  type SubscriptionsRemoveResult,
} from './subscriptions.js';
export {
  messagesList,
  messagesShow,
  DEFAULT_PAGE,
  MAX_PAGE,
  type MessagesListOptions,
  type MessagesListResult,
  type MessagesShowOptions,
  type ShownMessage,
} from './messages.js';
export {
  pauseSubscription,
  resumeSubscription,
  emptySubscription,
  dlqDiscard,
  retryNow,
  type PauseOptions,
  type PauseResult,
  type EmptyOptions,
  type EmptyResult,
  type DlqDiscardOptions,
  type DlqDiscardResult,
  type RetryNowOptions,
  type RetryNowResult,
} from './operator.js';
export { openDatabase, topicsOf, assertTopic, subscriptionsOf, pickSubscription, DEFAULT_DB, type Database } from './database.js';
export {
  ConfirmationRequiredError,
  DatabaseNotFoundError,
  MermaidFileOfOneDiagramError,
  MessageNotFoundError,
  NotADatabaseError,
  OutFolderNotFoundError,
  SubscriptionLeasedError,
  SubscriptionRequiredError,
  TopicNotRecordedError,
  UnknownStateError,
  UnknownSubscriptionError,
  UnknownTopicError,
  UnknownVizFormatError,
  UnknownVizTargetError,
} from './errors.js';
export { viz, renderViz, vizGraphs, VIZ_TARGETS, VIZ_FORMATS, type VizOptions, type VizTarget, type VizFormat } from './viz.js';
export { parseDuration, parseInteger } from './parse.js';
export { run } from './program.js';
export { serveDashboard, DEFAULT_DASHBOARD_PORT, type DashboardCommandOptions } from './dashboard.js';
export { runDemo, type DemoOptions } from './demo.js';
export { prove, judgeCrashRun, PROVE_RUNS, type ProveOptions, type ProveRun, type ProveRow, type ProveResult, type CrashJudgement } from './prove.js';
export {
  runCrashScenario,
  prepareDatabase,
  readEffects,
  readStored,
  startWorker,
  atMostOnceBounds,
  type ProveTarget,
  type CrashScenario,
  type CrashOutcome,
  type CrashProgress,
  type AtMostOnceBounds,
  type Running,
} from './prove-scenario.js';
