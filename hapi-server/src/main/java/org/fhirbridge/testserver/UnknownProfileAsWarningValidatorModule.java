package org.fhirbridge.testserver;

import ca.uhn.fhir.validation.IValidationContext;
import ca.uhn.fhir.validation.IValidatorModule;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import org.hl7.fhir.instance.model.api.IBaseResource;

/**
 * Wraps HAPI's instance validator for the (optional) request validation and turns "this profile is
 * unknown" errors into warnings.
 *
 * <p>The server runs offline and has no implementation guide packages loaded, so a resource that
 * declares {@code meta.profile} (for example a US Core profile) cannot be checked against it. HAPI
 * reports that as an error, which would reject every such resource. The resource is still validated
 * against the base R4 definitions; only the missing-profile messages are downgraded. Codes from
 * external code systems (LOINC, SNOMED CT, RxNorm) are already reported as warnings by HAPI.
 */
public class UnknownProfileAsWarningValidatorModule implements IValidatorModule {

	private final IValidatorModule delegate;

	public UnknownProfileAsWarningValidatorModule(IValidatorModule delegate) {
		this.delegate = delegate;
	}

	@Override
	public void validateResource(IValidationContext<IBaseResource> context) {
		delegate.validateResource(context);
		for (SingleValidationMessage message : context.getMessages()) {
			if (message.getSeverity() != null
					&& message.getSeverity().ordinal() >= ResultSeverityEnum.ERROR.ordinal()
					&& isUnknownProfileMessage(message.getMessage())) {
				message.setSeverity(ResultSeverityEnum.WARNING);
			}
		}
	}

	static boolean isUnknownProfileMessage(String text) {
		if (text == null) {
			return false;
		}
		return (text.startsWith("Profile reference '") && text.contains("could not be found"))
				|| text.startsWith("Invalid profile. Failed to retrieve profile with url=");
	}
}
