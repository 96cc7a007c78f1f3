package org.fhirbridge.testserver;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.match.registry.SubscriptionLoader;
import ca.uhn.fhir.jpa.subscription.match.registry.SubscriptionRegistry;
import ca.uhn.fhir.narrative2.NullNarrativeGenerator;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.interceptor.LoggingInterceptor;
import ca.uhn.fhir.rest.server.interceptor.RequestValidatingInterceptor;
import ca.uhn.fhir.rest.server.interceptor.ResponseHighlighterInterceptor;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import ca.uhn.fhir.validation.IValidatorModule;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.annotation.Qualifier;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** The FHIR REST layer: a HAPI {@link RestfulServer} servlet mounted at {@code /fhir/*}. */
@Configuration
public class RestfulServerConfig {

	private static final Logger LOG = LoggerFactory.getLogger(RestfulServerConfig.class);

	@Bean
	public RestfulServer restfulServer(
			IFhirSystemDao<?, ?> systemDao,
			ResourceProviderFactory resourceProviderFactory,
			IJpaSystemProvider systemProvider,
			JpaStorageSettings storageSettings,
			ISearchParamRegistry searchParamRegistry,
			IValidationSupport validationSupport,
			DatabaseBackedPagingProvider pagingProvider,
			@Qualifier("myInstanceValidator") IValidatorModule instanceValidator,
			SubscriptionRegistry subscriptionRegistry,
			SubscriptionLoader subscriptionLoader,
			TestServerProperties props) {
		FhirContext ctx = systemDao.getContext();
		// Do not generate narratives on write: faster, and keeps stored resources as sent.
		ctx.setNarrativeGenerator(new NullNarrativeGenerator());

		RestfulServer server = new RestfulServer(ctx);
		server.registerProviders(resourceProviderFactory.createProviders());
		// system level: transaction/batch, history, $expunge, $meta, ...
		server.registerProvider(systemProvider);

		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, systemDao, storageSettings, searchParamRegistry, validationSupport);
		capabilities.setImplementationDescription("fhir-bridge HAPI FHIR R4 test server");
		server.setServerConformanceProvider(capabilities);

		// _count + Bundle.link[next] paging, results kept in the database
		pagingProvider.setDefaultPageSize(props.getDefaultPageSize());
		pagingProvider.setMaximumPageSize(props.getMaxPageSize());
		server.setPagingProvider(pagingProvider);

		server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
		server.setDefaultPrettyPrint(false);
		// HTML rendering only when a browser asks for it
		server.registerInterceptor(new ResponseHighlighterInterceptor());

		// the tests' reset ($expunge) must also forget subscriptions registered in memory
		server.registerInterceptor(new ExpungeResetsSubscriptionsInterceptor(subscriptionRegistry, subscriptionLoader));

		if (props.isAccessLog()) {
			LoggingInterceptor access = new LoggingInterceptor();
			access.setLoggerName("fhirbridge.hapi.access");
			access.setMessageFormat(
					"${requestVerb} ${requestUrl}${requestParameters} -> ${operationType} ${idOrResourceName} in ${processingTimeMillis}ms");
			access.setErrorMessageFormat("ERROR ${requestVerb} ${requestUrl}${requestParameters} - ${exceptionMessage}");
			access.setLogExceptions(true);
			server.registerInterceptor(access);
		}

		if (props.isValidateRequests()) {
			RequestValidatingInterceptor validating = new WriteValidatingInterceptor();
			validating.addValidatorModule(new UnknownProfileAsWarningValidatorModule(instanceValidator));
			// only real errors reject a request; unknown LOINC/SNOMED/RxNorm codes and unknown
			// (not loaded) profiles in meta.profile are warnings
			validating.setFailOnSeverity(ResultSeverityEnum.ERROR);
			validating.setAddResponseHeaderOnSeverity(null);
			validating.setAddValidationResultsToResponseOperationOutcome(false);
			server.registerInterceptor(validating);
			LOG.info("Request validation enabled (fail on ERROR only)");
		}
		return server;
	}

	@Bean
	public ServletRegistrationBean<RestfulServer> fhirServlet(RestfulServer restfulServer) {
		ServletRegistrationBean<RestfulServer> reg = new ServletRegistrationBean<>(restfulServer, "/fhir/*");
		reg.setName("fhir");
		reg.setLoadOnStartup(1);
		return reg;
	}
}
