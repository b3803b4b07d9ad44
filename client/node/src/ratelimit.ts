// coord.ratelimit.v1.RateLimitService: rate limits decided atomically, one or many rules at once.
import type { CallOptions, Caller } from "./call.js";
import { checkOptions, durationFromMs, enumName, type Int64Like, msFromDuration, toBool, toInt64, toText } from "./convert.js";
import {
  Algorithm,
  CheckRequest,
  type CheckResponse,
  Descriptor as DescriptorPb,
  type DescriptorStatus as DescriptorStatusPb,
  FailureMode,
  Mode,
  type RateLimitServiceClient,
  ResetRequest,
  Rule as RulePb,
} from "./gen/coord/ratelimit/v1/ratelimit.js";

export type AlgorithmName = "token_bucket" | "sliding_window" | "sliding_log" | "fixed_window";

export interface Rule {
  algorithm: AlgorithmName;
  /** limit is how many units the period allows. */
  limit: Int64Like;
  /** period is the window (ms). */
  period: number;
  /** burst is the token bucket's capacity (default: limit). */
  burst?: Int64Like;
  /** onBackendError is what to decide when Redis is unreachable: "closed" (deny) or "open" (allow). */
  onBackendError?: "closed" | "open";
  /** name labels the rule in statuses and headers. */
  name?: string;
}

/** One limit to check: a key with either an inline rule or the name of a server-side policy. */
export interface Descriptor {
  key: string;
  rule?: Rule;
  policy?: string;
  /** cost is the units this descriptor consumes (default: the request's cost, or 1). */
  cost?: Int64Like;
}

export interface CheckOptions extends CallOptions {
  cost?: Int64Like;
  dryRun?: boolean;
  /** mode is "all_or_nothing" (default: a denial consumes from no rule) or "independent". */
  mode?: "all_or_nothing" | "independent";
  scope?: string;
}
const CHECK_OPTIONS = ["cost", "dryRun", "mode", "scope"] as const;

export interface DescriptorStatus {
  key: string;
  name: string;
  algorithm: AlgorithmName;
  allowed: boolean;
  consumed: boolean;
  limit: bigint;
  remaining: bigint;
  /** resetAfter, retryAfter and period are in milliseconds. */
  resetAfter: number;
  retryAfter: number;
  period: number;
}

export interface CheckResult {
  allowed: boolean;
  limit: bigint;
  remaining: bigint;
  /** resetAfter is when (ms from now) the limit is whole again; retryAfter when a retry may pass. */
  resetAfter: number;
  retryAfter: number;
  statuses: DescriptorStatus[];
  /** ratelimitHeader and ratelimitPolicyHeader are ready for the IETF RateLimit HTTP headers. */
  ratelimitHeader: string;
  ratelimitPolicyHeader: string;
  backendUnavailable: boolean;
  decideTime: Date | undefined;
}

const ALGORITHMS: Record<AlgorithmName, Algorithm> = {
  token_bucket: Algorithm.ALGORITHM_TOKEN_BUCKET,
  sliding_window: Algorithm.ALGORITHM_SLIDING_WINDOW,
  sliding_log: Algorithm.ALGORITHM_SLIDING_LOG,
  fixed_window: Algorithm.ALGORITHM_FIXED_WINDOW,
};

function descriptor(d: Descriptor, i: number): DescriptorPb {
  const at = `descriptors[${i}]`;
  checkOptions(d, ["key", "rule", "policy", "cost"], at);
  if ((d.rule === undefined) === (d.policy === undefined)) throw new TypeError(`${at}: give exactly one of rule and policy`);
  let ruleSource: DescriptorPb["ruleSource"];
  if (d.rule !== undefined) {
    const r = d.rule;
    checkOptions(r, ["algorithm", "limit", "period", "burst", "onBackendError", "name"], `${at}.rule`);
    const algorithm = ALGORITHMS[r.algorithm];
    if (algorithm === undefined) throw new TypeError(`${at}.rule.algorithm must be one of ${Object.keys(ALGORITHMS).join(", ")}`);
    if (r.onBackendError !== undefined && r.onBackendError !== "closed" && r.onBackendError !== "open") {
      throw new TypeError(`${at}.rule.onBackendError must be "closed" or "open"`);
    }
    ruleSource = {
      $case: "rule",
      value: RulePb.fromPartial({
        algorithm,
        limit: toInt64(r.limit, `${at}.rule.limit`),
        period: durationFromMs(r.period, `${at}.rule.period`),
        burst: r.burst === undefined ? 0n : toInt64(r.burst, `${at}.rule.burst`),
        onBackendError:
          r.onBackendError === "open" ? FailureMode.FAILURE_MODE_OPEN : r.onBackendError === "closed" ? FailureMode.FAILURE_MODE_CLOSED : FailureMode.FAILURE_MODE_UNSPECIFIED,
        name: toText(r.name, `${at}.rule.name`),
      }),
    };
  } else {
    ruleSource = { $case: "policy", value: toText(d.policy, `${at}.policy`) };
  }
  return DescriptorPb.fromPartial({ key: toText(d.key, `${at}.key`), ruleSource, cost: d.cost === undefined ? 0n : toInt64(d.cost, `${at}.cost`) });
}

function status(pb: DescriptorStatusPb): DescriptorStatus {
  return {
    key: pb.key,
    name: pb.name,
    algorithm: enumName(Algorithm, pb.algorithm, "ALGORITHM_") as AlgorithmName,
    allowed: pb.allowed,
    consumed: pb.consumed,
    limit: pb.limit,
    remaining: pb.remaining,
    resetAfter: msFromDuration(pb.resetAfter),
    retryAfter: msFromDuration(pb.retryAfter),
    period: msFromDuration(pb.period),
  };
}

function result(pb: CheckResponse): CheckResult {
  return {
    allowed: pb.allowed,
    limit: pb.limit,
    remaining: pb.remaining,
    resetAfter: msFromDuration(pb.resetAfter),
    retryAfter: msFromDuration(pb.retryAfter),
    statuses: pb.statuses.map(status),
    ratelimitHeader: pb.ratelimitHeader,
    ratelimitPolicyHeader: pb.ratelimitPolicyHeader,
    backendUnavailable: pb.backendUnavailable,
    decideTime: pb.decideTime,
  };
}

export class RateLimitApi {
  constructor(
    readonly stub: RateLimitServiceClient,
    private readonly caller: Caller,
  ) {}

  /** Check (and consume from) one descriptor or several, decided in one atomic step. */
  async check(descriptors: Descriptor | Descriptor[], options?: CheckOptions): Promise<CheckResult> {
    checkOptions(options, CHECK_OPTIONS, "ratelimit.check");
    const list = Array.isArray(descriptors) ? descriptors : [descriptors];
    const mode = options?.mode;
    if (mode !== undefined && mode !== "all_or_nothing" && mode !== "independent") {
      throw new TypeError(`mode must be "all_or_nothing" or "independent", got ${JSON.stringify(mode)}`);
    }
    const request = CheckRequest.fromPartial({
      descriptors: list.map(descriptor),
      cost: options?.cost === undefined ? 0n : toInt64(options.cost, "cost"),
      dryRun: toBool(options?.dryRun, "dryRun"),
      mode: mode === "independent" ? Mode.MODE_INDEPENDENT : mode === "all_or_nothing" ? Mode.MODE_ALL_OR_NOTHING : Mode.MODE_UNSPECIFIED,
      scope: toText(options?.scope, "scope"),
    });
    return result(await this.caller.unary(this.stub, "check", request, options));
  }

  /** Forget a key's state (its limit starts whole); true when there was any. */
  async reset(key: string, options?: CallOptions & { scope?: string }): Promise<boolean> {
    checkOptions(options, ["scope"], "ratelimit.reset");
    const res = await this.caller.unary(this.stub, "reset", ResetRequest.fromPartial({ key: toText(key, "key"), scope: toText(options?.scope, "scope") }), options);
    return res.existed;
  }
}
