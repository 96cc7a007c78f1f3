package org.fhirbridge.testserver;

import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * Tunables of the test server, bound from {@code fhirbridge.hapi.*} (application.properties,
 * command line {@code --fhirbridge.hapi.max-page-size=100} or environment
 * {@code FHIRBRIDGE_HAPI_MAXPAGESIZE=100}: dashes dropped, as Spring Boot maps environment variables).
 */
@ConfigurationProperties(prefix = "fhirbridge.hapi")
public class TestServerProperties {

	/** Page size used when a search has no {@code _count}. */
	private int defaultPageSize = 20;

	/** Largest {@code _count} honoured. */
	private int maxPageSize = 500;

	/**
	 * Register a RequestValidatingInterceptor (base R4 validation). Only ERROR-level issues reject a
	 * request; codes from external code systems (LOINC, SNOMED CT, RxNorm) cannot be checked offline
	 * and only produce warnings.
	 */
	private boolean validateRequests = false;

	/** Log one line per request (logger {@code fhirbridge.hapi.access}). */
	private boolean accessLog = true;

	/** How often (ms) HAPI polls its queue of changed resources for subscription matching retries. */
	private long subscriptionPollIntervalMs = 1000;

	public int getDefaultPageSize() {
		return defaultPageSize;
	}

	public void setDefaultPageSize(int defaultPageSize) {
		this.defaultPageSize = defaultPageSize;
	}

	public int getMaxPageSize() {
		return maxPageSize;
	}

	public void setMaxPageSize(int maxPageSize) {
		this.maxPageSize = maxPageSize;
	}

	public boolean isValidateRequests() {
		return validateRequests;
	}

	public void setValidateRequests(boolean validateRequests) {
		this.validateRequests = validateRequests;
	}

	public boolean isAccessLog() {
		return accessLog;
	}

	public void setAccessLog(boolean accessLog) {
		this.accessLog = accessLog;
	}

	public long getSubscriptionPollIntervalMs() {
		return subscriptionPollIntervalMs;
	}

	public void setSubscriptionPollIntervalMs(long subscriptionPollIntervalMs) {
		this.subscriptionPollIntervalMs = subscriptionPollIntervalMs;
	}
}
