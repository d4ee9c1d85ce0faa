import { TidingsError } from '@tidings/core';

/** The dashboard was asked to listen beyond loopback without a token: anyone who can reach it could redrive messages. */
export class DashboardTokenRequiredError extends TidingsError {
  constructor(readonly host: string) {
    super(
      'DASHBOARD_TOKEN_REQUIRED',
      `The dashboard will not listen on ${host} without a token: other machines could see and redrive messages. ` +
        `Pass createDashboard({ token }) (or tidings dashboard --token, or $TIDINGS_DASHBOARD_TOKEN), or listen on 127.0.0.1.`,
    );
  }
}

/** A port that is not an integer from 0 to 65535. */
export class InvalidPortError extends TidingsError {
  constructor(readonly port: unknown) {
    super('INVALID_PORT', `Port ${JSON.stringify(port)} is not a port: pass an integer from 1 to 65535, or 0 for any free port.`);
  }
}

/** The server could not listen: the port is taken (`PORT_IN_USE`), not ours to bind (`PORT_NOT_ALLOWED`), or the host is not this machine's. */
export class DashboardListenError extends TidingsError {
  constructor(code: 'PORT_IN_USE' | 'PORT_NOT_ALLOWED' | 'LISTEN_FAILED', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The codes of `DashboardRequestError`; core's `UNKNOWN_SUBSCRIPTION` and `CLOSED` mean what they mean there. */
export type DashboardRequestErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_JSON'
  | 'CONFIRMATION_REQUIRED'
  | 'SUBSCRIPTION_REQUIRED'
  | 'NOT_FOUND'
  | 'UNKNOWN_TOPIC'
  | 'UNKNOWN_SUBSCRIPTION'
  | 'UNKNOWN_MESSAGE'
  | 'METHOD_NOT_ALLOWED'
  | 'NOT_REDRIVABLE'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'HOST_NOT_ALLOWED'
  | 'CROSS_ORIGIN_REFUSED'
  | 'TOKEN_IN_URL_REFUSED'
  | 'CLOSED';

/** A request the dashboard's API refuses: answered with its HTTP status and `{ error: { code, message } }`. */
export class DashboardRequestError extends TidingsError {
  declare readonly code: DashboardRequestErrorCode;

  constructor(
    readonly status: number,
    code: DashboardRequestErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}
