import { InputError, SAFETY_POLICIES, type SafetyPolicy } from "../index.js";

/** Validates --safety-policy for generate and serve. */
export function safetyPolicyOption(value: string | undefined): SafetyPolicy | undefined {
  if (value !== undefined && !SAFETY_POLICIES.includes(value as SafetyPolicy)) {
    throw new InputError(`--safety-policy ${JSON.stringify(value)} is not one of ${SAFETY_POLICIES.join(", ")}`);
  }
  return value as SafetyPolicy | undefined;
}
