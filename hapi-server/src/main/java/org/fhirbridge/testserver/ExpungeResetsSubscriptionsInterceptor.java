package org.fhirbridge.testserver;

import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Interceptor;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.jpa.subscription.match.registry.SubscriptionLoader;
import ca.uhn.fhir.jpa.subscription.match.registry.SubscriptionRegistry;
import ca.uhn.fhir.rest.api.RestOperationTypeEnum;
import ca.uhn.fhir.rest.api.server.RequestDetails;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Makes a system-level {@code POST /fhir/$expunge} (the tests' reset) also reset HAPI's in-memory
 * subscription registry.
 *
 * <p>{@code expungeEverything} deletes Subscription rows straight from the database, but HAPI keeps
 * delivering to the subscriptions it already registered in memory until its periodic resync (about a
 * minute). That would let one test's subscription fire during the next test. Before the response of a
 * successful system-level {@code $expunge} is written, this drops every registered subscription and
 * reloads from the database the ones that still exist (none after expungeEverything).
 */
@Interceptor
public class ExpungeResetsSubscriptionsInterceptor {

	private static final Logger LOG = LoggerFactory.getLogger(ExpungeResetsSubscriptionsInterceptor.class);

	private final SubscriptionRegistry registry;
	private final SubscriptionLoader loader;

	public ExpungeResetsSubscriptionsInterceptor(SubscriptionRegistry registry, SubscriptionLoader loader) {
		this.registry = registry;
		this.loader = loader;
	}

	@Hook(Pointcut.SERVER_OUTGOING_RESPONSE)
	public boolean afterSystemExpunge(RequestDetails request) {
		if (request.getRestOperationType() == RestOperationTypeEnum.EXTENDED_OPERATION_SERVER
				&& "$expunge".equals(request.getOperation())) {
			int before = registry.size();
			registry.unregisterAllSubscriptions();
			loader.forceRefresh();
			LOG.info("System $expunge: subscription registry reset ({} registered before, {} now)", before, registry.size());
		}
		return true;
	}
}
